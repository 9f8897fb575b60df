'use strict'
// Shared by the suites: the Redis endpoints and the typed-value notation of the vectors.
const { spawn } = require('node:child_process')
const path = require('node:path')
const readline = require('node:readline')

const root = path.resolve(__dirname, '..', '..')

/**
 * The harness endpoints: POLYCACHE_TEST_REDIS (set by scripts/with-redis), or a harness
 * started for this file and stopped when the process exits (it stops its servers when
 * its stdin closes).
 */
let endpoints
async function redis() {
  if (endpoints) return endpoints
  if (process.env.POLYCACHE_TEST_REDIS) {
    endpoints = JSON.parse(process.env.POLYCACHE_TEST_REDIS)
    return endpoints
  }
  endpoints = (await harness([])).endpoints
  return endpoints
}

/**
 * Servers of this process's own (`polycache-harness` flags such as `--standalone`,
 * `--shards 3`), for tests that pause or kill them. `stop()` ends them; so does the
 * process's exit (the harness stops its servers when its stdin closes).
 */
async function harness(args) {
  const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target')
  const triple = process.env.CARGO_BUILD_TARGET || ''
  const binary = path.join(targetDir, triple, 'debug', 'polycache-harness')
  const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'inherit'] })
  const line = await new Promise((resolve, reject) => {
    child.once('error', reject)
    readline.createInterface({ input: child.stdout }).once('line', resolve)
  })
  // From here on the harness must not keep this process alive.
  child.unref()
  child.stdout.destroy()
  child.stdin.unref()
  const stop = () => {
    const exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve()
      else child.once('exit', resolve)
    })
    child.ref() // keep the process alive until the servers are gone
    child.stdin.end()
    return exited
  }
  return { endpoints: JSON.parse(line), stop }
}

/** Sends `signal` (SIGSTOP, SIGCONT, SIGKILL) to the server at `addr` of `endpoints`. */
function signal(endpoints, addr, name) {
  const pid = endpoints.pids[addr]
  if (!pid) throw new Error(`no pid for ${addr}`)
  process.kill(pid, name)
}

/** Typed vector notation (tests/vectors/README.md) -> a JS value, per FORMAT.md's Node column. */
function typed(v) {
  const [tag, inner] = Object.entries(v)[0]
  switch (tag) {
    case 'nil': return null
    case 'bool': return inner
    case 'int': {
      const big = BigInt(inner)
      return big >= -BigInt(Number.MAX_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big
    }
    case 'float': return inner === 'NaN' ? NaN : inner === 'inf' ? Infinity : inner === '-inf' ? -Infinity : Number(inner)
    case 'str': return inner
    case 'bytes': return Buffer.from(inner, 'hex')
    case 'array': return inner.map(typed)
    case 'map': return Object.fromEntries(Object.entries(inner).map(([k, x]) => [k, typed(x)]))
    default: throw new Error(`unknown typed tag ${tag}`)
  }
}

/**
 * Whether a typed value means the same thing as a JS value: Node has no integral floats
 * (FORMAT.md §2: `1.0` from Node is the integer 1), so such vectors can be checked in the
 * decode direction only.
 */
function representable(v) {
  const [tag, inner] = Object.entries(v)[0]
  if (tag === 'float') {
    const n = typed(v)
    return !(Number.isInteger(n) && Math.abs(n) <= Number.MAX_SAFE_INTEGER)
  }
  if (tag === 'array') return inner.every(representable)
  if (tag === 'map') return Object.values(inner).every(representable)
  return true
}

/** Deep equality that tells -0 from 0, NaN equal to NaN, bigint from number, bytes by content. */
function same(a, b) {
  if (typeof a === 'number' && typeof b === 'number') return Object.is(a, b)
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]))
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a).sort()
    const kb = Object.keys(b).sort()
    return same(ka, kb) && ka.every((k) => same(a[k], b[k]))
  }
  return a === b
}

function vectors(name) {
  return require(path.join(root, 'tests', 'vectors', `${name}.json`)).cases
}

/** A loopback port nothing listens on (bound, read, closed). */
async function freePort() {
  const net = require('node:net')
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** A namespace no other test uses, so suites sharing one Redis never collide. */
function uniqueNamespace(label) {
  return `node-${label}-${process.pid}-${Date.now().toString(36)}`
}

module.exports = { redis, harness, signal, typed, representable, same, vectors, uniqueNamespace, freePort, root }
