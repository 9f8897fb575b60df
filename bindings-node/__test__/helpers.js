'use strict'
// Shared by the suites: the Redis endpoints; the vector files and their typed notation come
// from tests/vectors/notation.cjs (shared with the interop agent and the JS edge tests).
const { spawn } = require('node:child_process')
const path = require('node:path')
const readline = require('node:readline')

const root = path.resolve(__dirname, '..', '..')
const { typed, representable, same, vectors, hostileBytes } = require(path.join(root, 'tests', 'vectors', 'notation.cjs'))

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

/** A loopback port nothing listens on (bound, read, closed). */
async function freePort() {
  const net = require('node:net')
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

/**
 * Resolves once `ready()` (or the promise it returns) holds, checking after each turn of the
 * event loop; rejects after `ms`. Tests wait on a condition, never for a fixed time.
 */
async function waitUntil(ready, what, ms = 10000) {
  const deadline = performance.now() + ms
  while (!(await ready())) {
    if (performance.now() > deadline) throw new Error(`still waiting until ${what} after ${ms} ms`)
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/** A namespace no other test uses, so suites sharing one Redis never collide. */
function uniqueNamespace(label) {
  return `node-${label}-${process.pid}-${Date.now().toString(36)}`
}

module.exports = { redis, harness, signal, typed, representable, same, vectors, hostileBytes, waitUntil, uniqueNamespace, freePort, root }
