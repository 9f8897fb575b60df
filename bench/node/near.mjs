// The near tier (issue 11) in Node against bentocache's two tiers, one process, one Redis
// started by the harness.
//
//   node bench/node/near.mjs          (make bench-node builds the release addon first)
//
// Each client runs for BENCH_SECONDS (default 2) in rounds over all clients (BENCH_ROUNDS,
// default 4; the best round of each counts):
//   near hit         await get(key), nearCache on     vs bentocache get, memory L1 + redis L2 (an L1 hit)
//   getOrLoad hit    await getOrLoad(key, loader)     vs bentocache getOrSet, L1 + L2 (an L1 hit)
// then the invalidation delay (another client's set resolving -> the near entry gone, on
// loopback). The value is the ~200-byte object of bench.mjs. Ratios are polycache / peer.
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { redisDriver } from 'bentocache/drivers/redis'

import { binding, measure, opsPerSecond, percentile, ROUNDS, SECONDS, startHarness, VALUE } from './common.mjs'

const { Cache } = binding
const DELAY_SAMPLES = 1000
const TARGET = 3.0
const fmt = (x) => opsPerSecond(x, 18)

/** Another client's set resolving -> the reader's near entry gone, polled on this thread
 * (the tracking thread applies the push meanwhile). Milliseconds, sorted. */
async function invalidationDelays(url) {
  const reader = await Cache.connect(url, { namespace: 'near-delay', nearCache: 100 })
  const writer = await Cache.connect(url, { namespace: 'near-delay' })
  await writer.set('k', 0, { ttl: 300 })
  const delays = []
  const deadline = performance.now() + 60_000
  for (let i = 1; i <= DELAY_SAMPLES; i++) {
    // Read until a read is a near hit (a read overtaken by the last write's push is not stored).
    for (;;) {
      const before = reader.metrics().nearHits
      await reader.get('k')
      if (reader.metrics().nearHits > before) break
      if (performance.now() > deadline) throw new Error('near tier did not store the key')
    }
    await writer.set('k', i, { ttl: 300 })
    const returned = performance.now()
    while (reader.metrics().nearEntries) {
      if (performance.now() > deadline) throw new Error('invalidation not seen')
    }
    delays.push(performance.now() - returned)
  }
  reader.close()
  writer.close()
  return delays.sort((a, b) => a - b)
}

async function main() {
  const redis = await startHarness()
  const { hostname, port } = new URL(redis.url)
  const connection = { host: hostname, port: Number(port) }

  const polycache = await Cache.connect(redis.url, { namespace: 'near-bench', nearCache: 10_000 })
  const bento = new BentoCache({
    default: 'tiered',
    stores: {
      tiered: bentostore().useL1Layer(memoryDriver({ maxSize: '10mb' })).useL2Layer(redisDriver({ connection })),
    },
  })
  await polycache.set('user', VALUE, { ttl: 600 })
  await bento.set({ key: 'user', value: VALUE, ttl: '10m' })
  const loader = () => VALUE
  await polycache.getOrLoad('gos', loader, { ttl: 600 })
  await bento.getOrSet({ key: 'gos', factory: loader, ttl: '10m' })
  for (let i = 0; i < 3; i++) {
    await polycache.get('user')
    await polycache.getOrLoad('gos', loader, { ttl: 600 })
  }

  const scenarios = [
    {
      name: 'near hit',
      ours: ['polycache get (nearCache)', () => polycache.get('user')],
      peer: ['bentocache get (L1 memory + L2 redis)', () => bento.get({ key: 'user' })],
    },
    {
      name: 'getOrLoad hit',
      ours: ['polycache getOrLoad (nearCache)', () => polycache.getOrLoad('gos', loader, { ttl: 600 })],
      peer: ['bentocache getOrSet (L1 + L2)', () => bento.getOrSet({ key: 'gos', factory: loader, ttl: '10m' })],
    },
  ]
  console.log(`bench-node near: Node ${process.version}, ${SECONDS}s x ${ROUNDS} rounds per client, best round; Redis ${redis.url}`)
  const hitsBefore = polycache.metrics().nearHits
  const best = scenarios.map(() => [0, 0])
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, s] of scenarios.entries()) {
      best[i][0] = Math.max(best[i][0], await measure(s.ours[1]))
      best[i][1] = Math.max(best[i][1], await measure(s.peer[1]))
    }
  }
  const m = polycache.metrics()
  const summary = []
  for (const [i, s] of scenarios.entries()) {
    console.log(`\n${s.name}`)
    console.log(`  ${s.ours[0].padEnd(40)} ${fmt(best[i][0])}`)
    console.log(`  ${s.peer[0].padEnd(40)} ${fmt(best[i][1])}`)
    const ratio = best[i][0] / best[i][1]
    summary.push(`  ${s.name.padEnd(16)} vs ${s.peer[0].padEnd(38)} ${ratio.toFixed(2)}x (target >= ${TARGET}x: ${ratio >= TARGET ? 'met' : 'NOT met'})`)
  }
  console.log(`  near hits counted during the runs: ${(m.nearHits - hitsBefore).toLocaleString('en-US')}, near misses ${m.nearMisses}`)

  const delays = await invalidationDelays(redis.url)
  const p99 = percentile(delays, 99)
  console.log(`\ninvalidation delay, loopback (${DELAY_SAMPLES} writes by another client)`)
  console.log(`  p50 ${percentile(delays, 50).toFixed(3)} ms, p99 ${p99.toFixed(3)} ms, max ${delays.at(-1).toFixed(3)} ms`)
  summary.push(`  invalidation delay p99 ${p99.toFixed(3)} ms (target < 5 ms: ${p99 < 5 ? 'met' : 'NOT met'})`)

  console.log('\nsummary (polycache / peer; issue 11 targets):')
  for (const line of summary) console.log(line)

  polycache.close()
  await bento.disconnectAll()
  redis.stop()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
