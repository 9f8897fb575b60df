// HTTP server benchmark: node:http servers that do one cache read per request, driven by
// autocannon, polycache against ioredis, on a harness-started Redis reached directly and
// through delay-proxy.mjs adding 0.5 ms and 2 ms each way.
//
//   node bench/node/http.mjs       (make bench-node runs it after bench.mjs)
//
// BENCH_HTTP_SECONDS (default 10) per run, BENCH_HTTP_CONNECTIONS (default 50) keep-alive
// connections, BENCH_HTTP_ROUNDS (default 2; the best round of each counts),
// BENCH_HTTP_DELAYS (say `0,2`: only those modes). The servers,
// the proxy and autocannon each run in their own process. Ratios are polycache / ioredis
// for requests/s (> 1: polycache serves more) and for p99 latency (< 1: polycache lower).
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import autocannon from 'autocannon'
import Redis from 'ioredis'

import { binding, VALUE, workspaceBinary } from './common.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 10)
const CONNECTIONS = Number(process.env.BENCH_HTTP_CONNECTIONS ?? 50)
const ROUNDS = Number(process.env.BENCH_HTTP_ROUNDS ?? 2)
const MODES = [['direct', 0], ['+0.5 ms each way', 0.5], ['+2 ms each way', 2]].filter(
  ([, delay]) => !process.env.BENCH_HTTP_DELAYS || process.env.BENCH_HTTP_DELAYS.split(',').map(Number).includes(delay),
)
const CLIENTS = ['polycache', 'ioredis', 'ioredis-pipelined']

/** Starts `node script args…`; resolves with its first stdout line and a stop function. */
async function child(command, args) {
  const proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] })
  const line = await new Promise((resolve, reject) => {
    proc.once('error', reject)
    proc.once('exit', (code) => reject(new Error(`${command} ${args.join(' ')} exited with ${code}`)))
    createInterface({ input: proc.stdout }).once('line', resolve)
  })
  const stop = () => new Promise((resolve) => {
    if (proc.exitCode !== null) return resolve()
    proc.removeAllListeners('exit')
    proc.once('exit', resolve)
    proc.stdin.end()
  })
  return { line, stop }
}

function harness() {
  return child(workspaceBinary('polycache-harness'), ['--standalone'])
}

async function run(port, seconds) {
  const result = await autocannon({ url: `http://127.0.0.1:${port}/`, connections: CONNECTIONS, duration: seconds })
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${result.non2xx} non-2xx, ${result.errors} errors`)
  return { rps: result.requests.average, p99: result.latency.p99 }
}

async function main() {
  const redisProc = await harness()
  const redisUrl = JSON.parse(redisProc.line).standalone
  const { hostname, port } = new URL(redisUrl)
  const { Cache } = binding
  const seed = await Cache.connect(redisUrl, { namespace: 'bench-http' })
  await seed.set('user', VALUE)
  const raw = new Redis({ host: hostname, port: Number(port) })
  await raw.set('raw:user', JSON.stringify(VALUE))
  raw.disconnect()
  seed.close()

  console.log(`bench-node http: Node ${process.version}, autocannon ${CONNECTIONS} connections, ${SECONDS}s x ${ROUNDS} rounds, best round`)
  const best = {}
  for (const [mode, delay] of MODES) {
    const proxy = delay > 0 ? await child(process.execPath, [path.join(here, 'delay-proxy.mjs'), `${hostname}:${port}`, String(delay)]) : null
    const url = proxy ? `redis://${proxy.line}` : redisUrl
    for (let round = 0; round < ROUNDS; round++) {
      for (const client of CLIENTS) {
        const server = await child(process.execPath, [path.join(here, 'http-server.mjs'), client, url])
        await run(server.line, 1) // warm up
        const r = await run(server.line, SECONDS)
        await server.stop()
        const key = `${mode}|${client}`
        const prev = best[key]
        best[key] = prev && prev.rps >= r.rps ? prev : r
      }
    }
    await proxy?.stop()
  }
  await redisProc.stop()

  console.log(`\n${'mode'.padEnd(18)} ${'client'.padEnd(18)} ${'req/s'.padStart(8)} ${'p99 ms'.padStart(7)}`)
  for (const [mode] of MODES) {
    for (const client of CLIENTS) {
      const r = best[`${mode}|${client}`]
      console.log(`${mode.padEnd(18)} ${client.padEnd(18)} ${Math.round(r.rps).toString().padStart(8)} ${String(r.p99).padStart(7)}`)
    }
  }
  console.log('\nratios polycache / peer (req/s: > 1 is more; p99: < 1 is lower):')
  for (const [mode] of MODES) {
    const ours = best[`${mode}|polycache`]
    for (const peer of CLIENTS.slice(1)) {
      const theirs = best[`${mode}|${peer}`]
      const p99 = theirs.p99 > 0 ? (ours.p99 / theirs.p99).toFixed(2) : 'n/a'
      console.log(`  ${mode.padEnd(18)} vs ${peer.padEnd(18)} req/s ${(ours.rps / theirs.rps).toFixed(2)}x   p99 ${p99}x`)
    }
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
