// What every Node benchmark here shares: the binding, the Redis it runs on, the value it
// caches, and how it times and reports.
import { execFileSync, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const require = createRequire(import.meta.url)
// POLYCACHE_NODE_PACKAGE: another build of the binding (default: bindings-node/).
export const binding = require(process.env.POLYCACHE_NODE_PACKAGE ?? path.join(root, 'bindings-node'))

export const SECONDS = Number(process.env.BENCH_SECONDS ?? 2)
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4)

/** The ~200-byte object of every hit benchmark. */
export const VALUE = {
  id: 42,
  name: 'Ada Lovelace',
  email: 'ada@example.com',
  roles: ['admin', 'editor'],
  active: true,
  score: 98.5,
  createdAt: 1700000000000,
  address: { city: 'London', country: 'UK', postcode: 'W1' },
}

/** A debug build's binary of the workspace (the harness, the interop agent). */
export function workspaceBinary (name) {
  const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(root, 'target')
  return path.join(targetDir, process.env.CARGO_BUILD_TARGET ?? '', 'debug', name)
}

/** A standalone redis-server from the harness; `stop()` ends it. */
export async function startHarness () {
  const child = spawn(workspaceBinary('polycache-harness'), ['--standalone'], { stdio: ['pipe', 'pipe', 'inherit'] })
  const line = await new Promise((resolve, reject) => {
    child.once('error', reject)
    createInterface({ input: child.stdout }).once('line', resolve)
  })
  return { url: JSON.parse(line).standalone, stop: () => child.stdin.end() }
}

/**
 * With POLYCACHE_BENCH_CPU=n, this process (all its threads) and the redis-server at `url`
 * run on CPU n alone, and a round trip costs the CPU work of both ends. Otherwise each
 * round trip also waits for an idle CPU to wake (on the VMs this is measured on, about
 * 100 µs a call, whichever client makes it). Answers what was done, for the report.
 */
export function pinned (url) {
  const cpu = process.env.POLYCACHE_BENCH_CPU
  if (cpu === undefined) return 'not pinned'
  const port = new URL(url).port
  const servers = execFileSync('pgrep', ['-f', `^redis-server .*:${port}( |$)`]).toString().trim().split('\n')
  for (const pid of [...servers, String(process.pid)]) execFileSync('taskset', ['-a', '-p', '-c', cpu, pid], { stdio: 'ignore' })
  return `process and redis-server on CPU ${cpu}`
}

/** The standalone server of POLYCACHE_TEST_REDIS when set (`scripts/with-redis`), else
 * one started through the harness. */
export async function redisServer () {
  const shared = process.env.POLYCACHE_TEST_REDIS
  if (shared) return { url: JSON.parse(shared).standalone, stop: () => {} }
  return startHarness()
}

/** Calls `op` (one unit of work = `per` operations) for SECONDS; operations per second. */
export async function measure (op, per = 1) {
  for (let i = 0; i < 200; i++) await op() // warm up
  let n = 0
  const started = process.hrtime.bigint()
  const limit = started + BigInt(Math.round(SECONDS * 1e9))
  let now = started
  while (now < limit) {
    for (let i = 0; i < 64; i++) await op()
    n += 64
    now = process.hrtime.bigint()
  }
  return (n * per) / (Number(now - started) / 1e9)
}

/** Milliseconds one awaited call of `fn` took, and what it resolved to. */
export async function timed (fn) {
  const started = process.hrtime.bigint()
  const got = await fn()
  return [Number(process.hrtime.bigint() - started) / 1e6, got]
}

/** The nearest-rank percentile `q` (0-100) of ascending `sorted`. */
export const percentile = (sorted, q) => sorted[Math.max(1, Math.ceil((q / 100) * sorted.length)) - 1]

export const sortedCopy = (values) => [...values].sort((a, b) => a - b)

export const opsPerSecond = (x, width = 16) => `${Math.round(x).toLocaleString('en-US')} ops/s`.padStart(width)

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
