// The codec path at every size (issue 13): polycache get/set against ioredis + JSON.parse /
// JSON.stringify and ioredis + msgpackr, one loopback Redis, sequential calls.
//
//   node bench/node/codec.mjs              (make bench-node runs it after bench.mjs)
//   node bench/node/codec.mjs --js-thread  the conversion alone, no Redis (see jsThread)
//
// Values: the record object { field_i: { id, name, score, tags: ['a', 'b'], ok } } and an
// array of floats, each at about 100 B, 1 KB, 10 KB, 100 KB and 1 MB of JSON. Printed:
// polycache's time per call (median of rounds) and µs per KB, ratios against each peer and
// the faster of the two (the peer's time / polycache's in the same round, median of rounds:
// above 1 polycache is faster; see row), and the peak RSS growth of one 1 MB get in a fresh
// process. POLYCACHE_BENCH_COMPRESSION=none|lz4 overrides the cache's
// compression (default: the cache's default). POLYCACHE_BENCH_CPU=0 runs this process and
// the server on CPU 0 alone (see common.mjs `pinned`: the work of a round trip, without the
// wait for an idle CPU to wake); `make bench-node` runs the table both ways.
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

import Redis from 'ioredis'
import { pack, unpack } from 'msgpackr'

import { binding, pinned, startHarness } from './common.mjs'

const { Cache } = binding

// POLYCACHE_BENCH_SIZES=100,10000 runs only those sizes.
const SIZES = process.env.POLYCACHE_BENCH_SIZES?.split(',').map(Number) ??
  [100, 1_000, 10_000, 100_000, 1_000_000]
// Rounds per cell; more (POLYCACHE_BENCH_ROUNDS=15) steadies a loaded machine.
const ROUNDS = Number(process.env.POLYCACHE_BENCH_ROUNDS ?? 9)

const records = (n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [
  `field_${i}`, { id: i, name: `user ${i}`, score: i * 1.5 + 0.25, tags: ['a', 'b'], ok: true },
]))
const floats = (n) => Array.from({ length: n }, (_, i) => i * 0.3183098861837907 + 0.1)

/** The value whose JSON is closest to `target` bytes (at least one item). */
function sized (make, target) {
  let lo = 1; let hi = 1
  while (JSON.stringify(make(hi)).length < target) { lo = hi; hi *= 2 }
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2)
    if (JSON.stringify(make(mid)).length < target) lo = mid + 1
    else hi = mid
  }
  return make(lo)
}

/**
 * Seconds per call of each of `fns` (by name) in each of ROUNDS rounds, and the best. Within
 * a round the contenders take turns in slices of a tenth of the round's calls, each slice
 * starting with the next contender, so a phase of the machine (this VM's round trips swing
 * between about 25 and 130 µs for seconds at a time) falls on all of them alike; whole
 * rounds taking turns left one contender's best round in a fast phase and another's in a
 * slow one. Rotating the order also means none always follows the same one (and the
 * garbage it left: `JSON.stringify` of a 1 MB value leaves megabytes).
 */
async function perCall (fns, size) {
  const calls = Math.max(5, Math.min(2000, Math.floor(2_000_000 / size)))
  const slices = Math.min(10, calls)
  const perSlice = Math.ceil(calls / slices)
  const best = {}
  const rounds = []
  const entries = Object.entries(fns)
  for (const [name, fn] of entries) {
    await fn()
    best[name] = Infinity
  }
  for (let r = 0; r < ROUNDS; r++) {
    const spent = Object.fromEntries(entries.map(([name]) => [name, 0n]))
    for (let s = 0; s < slices; s++) {
      const turn = (r * slices + s) % entries.length
      for (const [name, fn] of [...entries.slice(turn), ...entries.slice(0, turn)]) {
        const started = process.hrtime.bigint()
        for (let i = 0; i < perSlice; i++) await fn()
        spent[name] += process.hrtime.bigint() - started
      }
    }
    const round = {}
    for (const [name] of entries) {
      round[name] = Number(spent[name]) / 1e9 / (slices * perSlice)
      best[name] = Math.min(best[name], round[name])
    }
    rounds.push(round)
  }
  return { best, rounds }
}

const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

// The same round trip as the cache's: it writes every value with its TTL (300 s by
// default), so the peers write theirs with it too (a SET without one is less work for Redis).
const TTL_MS = 300_000
const COMPRESSION = process.env.POLYCACHE_BENCH_COMPRESSION
const OPTIONS = { namespace: 'bench-codec', ...(COMPRESSION ? { compression: COMPRESSION } : {}) }

/**
 * One cell: polycache's median time per call and, against each peer and the faster of the
 * two, the median over rounds of the round's ratio (the peer's time / polycache's in that
 * round). A ratio of two times taken in the same round, slice by slice, leaves out the
 * machine's phases that two best-of-rounds times each pick up on their own; the median
 * leaves out a round a phase still fell on unevenly.
 */
function row (label, rounds, size) {
  const ours = median(rounds.map((r) => r.polycache))
  const ratio = (peer) => median(rounds.map((r) => peer(r) / r.polycache))
  const ratios = [(r) => r.msgpackr, (r) => r.json, (r) => Math.min(r.msgpackr, r.json)]
    .map((peer) => `${ratio(peer).toFixed(2)}x`.padStart(8)).join('  ')
  // The middle half of the rounds' ratios against the faster peer: how far one run's
  // median can be trusted on this machine.
  const faster = rounds.map((r) => Math.min(r.msgpackr, r.json) / r.polycache).sort((a, b) => a - b)
  const spread = `${faster[Math.floor((faster.length - 1) / 4)].toFixed(2)}–${faster[Math.ceil((faster.length - 1) * 3 / 4)].toFixed(2)}`
  console.log(`  ${label.padEnd(22)} ${(ours * 1e6).toFixed(1).padStart(10)} µs  ${(ours * 1e6 / (size / 1000)).toFixed(2).padStart(7)} µs/KB  ${ratios}  ${spread.padStart(10)}`)
}

export async function run (url) {
  const cache = await Cache.connect(url, OPTIONS)
  const client = new Redis(url)
  const placement = pinned(url)
  console.log(`\ncodec path, sequential calls, ${placement}, compression: ${COMPRESSION ?? 'default'}, ${ROUNDS} rounds (time: median; ratio = peer time / polycache time in a round, median of rounds; > 1: polycache faster)`)
  console.log(`  ${'value, direction'.padEnd(22)} ${'polycache'.padStart(13)}  ${'cost'.padStart(13)}  vs msgpackr  vs JSON  vs faster  (middle half)`)
  for (const [kind, make] of [['records', records], ['floats', floats]]) {
    for (const target of SIZES) {
      const value = sized(make, target)
      const size = JSON.stringify(value).length
      const key = `${kind}:${target}`
      await client.set(`mp:${key}`, pack(value))
      await client.set(`js:${key}`, JSON.stringify(value))
      await cache.set(key, value)
      const label = `${kind} ${size / 1000} KB`
      const get = await perCall({
        polycache: () => cache.get(key),
        msgpackr: async () => unpack(await client.getBuffer(`mp:${key}`)),
        json: async () => JSON.parse(await client.get(`js:${key}`)),
      }, size)
      row(`${label} get`, get.rounds, size)
      const set = await perCall({
        polycache: () => cache.set(key, value),
        msgpackr: () => client.set(`mp:${key}`, pack(value), 'PX', TTL_MS),
        json: () => client.set(`js:${key}`, JSON.stringify(value), 'PX', TTL_MS),
      }, size)
      row(`${label} set`, set.rounds, size)
    }
  }
  client.disconnect()
  cache.close?.()
  if (!SIZES.includes(1_000_000)) return
  console.log('\npeak RSS growth of one 1 MB records get (fresh process each)')
  for (const who of ['polycache', 'msgpackr', 'json']) {
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--rss', url, who], { encoding: 'utf8' })
    console.log(`  ${who.padEnd(10)} ${(Number(out.trim()) / 1024).toFixed(1).padStart(8)} MiB`)
  }
}

async function rss (url, who) {
  const cache = await Cache.connect(url, OPTIONS)
  const client = new Redis(url)
  await client.ping()
  const get = {
    polycache: () => cache.get('records:1000000'),
    msgpackr: async () => unpack(await client.getBuffer('mp:records:1000000')),
    json: async () => JSON.parse(await client.get('js:records:1000000')),
  }[who]
  const before = process.memoryUsage().rss / 1024
  const value = await get()
  const peak = process.resourceUsage().maxRSS
  console.log(Math.max(0, Math.round(peak - before)), Object.keys(value).length > 0 ? '' : '')
  process.exit(0)
}

/**
 * The conversion alone, on the JS thread, no Redis (`--js-thread`): a set's walk and
 * encode (`encodeEnvelope`, compression off: the set path's tape walk and core's encoder)
 * against msgpackr `pack` and `JSON.stringify`; a get's materialization (`decodeEnvelope`:
 * core's transcode, then what V8 makes objects from) against msgpackr `unpack` and
 * `JSON.parse`. POLYCACHE_BENCH_BASE=<a copy of bindings-node> adds that build as
 * `base`, its rounds alternating with the others'. µs per call, best of ROUNDS.
 */
async function jsThread () {
  const builds = { polycache: binding }
  if (process.env.POLYCACHE_BENCH_BASE) builds.base = createRequire(import.meta.url)(process.env.POLYCACHE_BENCH_BASE)
  const none = { compression: 'none' }
  const us = (t) => (t * 1e6).toFixed(1).padStart(10)
  console.log('\nthe conversion alone, JS thread, µs per call (best of rounds)')
  for (const [kind, make] of [['records', records], ['floats', floats]]) {
    for (const target of SIZES.slice(2)) {
      const value = sized(make, target)
      const size = JSON.stringify(value).length
      const packed = pack(value)
      const text = JSON.stringify(value)
      const set = { msgpackr: () => pack(value), json: () => JSON.stringify(value) }
      const get = { msgpackr: () => unpack(packed), json: () => JSON.parse(text) }
      for (const [name, b] of Object.entries(builds)) {
        const stored = b.encodeEnvelope(value, none)
        set[name] = () => b.encodeEnvelope(value, none)
        get[name] = () => b.decodeEnvelope(stored)
      }
      for (const [direction, fns] of [['set', set], ['get', get]]) {
        const { best } = await perCall(fns, size)
        console.log(`  ${`${kind} ${size / 1000} KB ${direction}`.padEnd(24)} ${Object.entries(best).map(([n, t]) => `${n} ${us(t)}`).join('  ')}`)
      }
    }
  }
}

if (process.argv[2] === '--js-thread') {
  await jsThread()
} else if (process.argv[2] === '--rss') {
  await rss(process.argv[3], process.argv[4])
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { url, stop } = await startHarness()
  try {
    await run(url)
  } finally {
    stop()
  }
}
