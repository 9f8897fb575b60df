// polycache (Node) side by side with its peers, one process, one Redis started by the harness.
//
//   node bench/node/bench.mjs          (make bench-node builds the release addon first)
//
// Scenarios, each run for BENCH_SECONDS (default 2) per client, in rounds over all clients
// (BENCH_ROUNDS, default 4; the best round of each client counts):
//   sequential hit   await get(key) in a loop        vs ioredis GET + JSON.parse, node-redis GET + JSON.parse
//   50 concurrent    Promise.all of 50 gets           vs ioredis with enableAutoPipelining (+ JSON.parse)
//   getOrSet hit     await getOrLoad(key, loader)     vs cache-manager + @keyv/redis wrap(), bentocache getOrSet (redis only)
// The value is the same ~200-byte object everywhere. Ratios are polycache / peer (> 1: polycache faster).
import Redis from 'ioredis'
import { createClient } from 'redis'
import { createCache } from 'cache-manager'
import { Keyv } from 'keyv'
import KeyvRedis from '@keyv/redis'
import { BentoCache, bentostore } from 'bentocache'
import { redisDriver } from 'bentocache/drivers/redis'

import { run as codecBench } from './codec.mjs'
import { binding, measure, opsPerSecond as fmt, ROUNDS, SECONDS, startHarness, VALUE } from './common.mjs'

const { Cache } = binding

async function main() {
  const redis = await startHarness()
  const { hostname, port } = new URL(redis.url)
  const connection = { host: hostname, port: Number(port) }

  const polycache = await Cache.connect(redis.url, { namespace: 'bench' })
  const polycacheAsync = await Cache.connect(redis.url, { namespace: 'bench', io: 'async' })
  const ioredis = new Redis(connection)
  const ioredisPipelined = new Redis({ ...connection, enableAutoPipelining: true })
  const nodeRedis = createClient({ url: redis.url })
  await nodeRedis.connect()
  const cacheManager = createCache({ stores: [new Keyv({ store: new KeyvRedis(redis.url), namespace: 'bench-cm' })] })
  const bento = new BentoCache({
    default: 'redis',
    stores: { redis: bentostore().useL2Layer(redisDriver({ connection })) },
  })

  await polycache.set('user', VALUE, { ttl: 600 })
  await ioredis.set('raw:user', JSON.stringify(VALUE), 'EX', 600)
  const loader = () => VALUE
  await polycache.getOrLoad('gos', loader, { ttl: 600 })
  await cacheManager.wrap('gos', loader, 600_000)
  await bento.getOrSet({ key: 'gos', factory: loader, ttl: '10m' })

  const keys50 = Array.from({ length: 50 }, () => 'user')
  const rawKeys50 = Array.from({ length: 50 }, () => 'raw:user')
  const scenarios = [
    {
      name: 'sequential hit',
      ours: { 'polycache get': () => polycache.get('user'), 'polycache get (io: async)': () => polycacheAsync.get('user') },
      peers: {
        'ioredis GET + JSON.parse': async () => JSON.parse(await ioredis.get('raw:user')),
        'node-redis GET + JSON.parse': async () => JSON.parse(await nodeRedis.get('raw:user')),
      },
    },
    {
      name: '50 concurrent gets',
      per: 50,
      ours: {
        'polycache get x50': () => Promise.all(keys50.map((k) => polycache.get(k))),
        'polycache get x50 (io: async)': () => Promise.all(keys50.map((k) => polycacheAsync.get(k))),
      },
      peers: {
        'ioredis auto-pipelining x50': () => Promise.all(rawKeys50.map(async (k) => JSON.parse(await ioredisPipelined.get(k)))),
      },
    },
    {
      name: 'getOrSet hit',
      ours: { 'polycache getOrLoad': () => polycache.getOrLoad('gos', loader, { ttl: 600 }) },
      peers: {
        'cache-manager + @keyv/redis wrap': () => cacheManager.wrap('gos', loader, 600_000),
        'bentocache getOrSet (redis only)': () => bento.getOrSet({ key: 'gos', factory: loader, ttl: '10m' }),
      },
    },
  ]

  console.log(`bench-node: Node ${process.version}, ${SECONDS}s x ${ROUNDS} rounds per client, best round; Redis ${redis.url}`)
  // Rounds outermost, so a burst of load elsewhere on the machine hits every client alike.
  const best = scenarios.map(() => ({}))
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, scenario] of scenarios.entries()) {
      for (const [name, op] of Object.entries({ ...scenario.ours, ...scenario.peers })) {
        const rate = await measure(op, scenario.per ?? 1)
        best[i][name] = Math.max(best[i][name] ?? 0, rate)
      }
    }
  }
  const results = []
  for (const [i, scenario] of scenarios.entries()) {
    console.log(`\n${scenario.name}`)
    for (const [name, rate] of Object.entries(best[i])) console.log(`  ${name.padEnd(36)} ${fmt(rate)}`)
    const ours = Object.keys(scenario.ours)[0]
    for (const peer of Object.keys(scenario.peers)) {
      const ratio = best[i][ours] / best[i][peer]
      results.push({ scenario: scenario.name, ours, peer, ratio })
      console.log(`  ratio ${ours} / ${peer}: ${ratio.toFixed(2)}x`)
    }
  }

  console.log('\nsummary (polycache / peer; targets from issue 4):')
  const targets = { 'ioredis GET + JSON.parse': 1.0, 'ioredis auto-pipelining x50': 1.5, 'bentocache getOrSet (redis only)': 3.0 }
  for (const r of results) {
    const target = targets[r.peer]
    const verdict = target ? ` (target >= ${target.toFixed(1)}x: ${r.ratio >= target ? 'met' : 'not met'})` : ''
    console.log(`  ${r.scenario.padEnd(20)} vs ${r.peer.padEnd(34)} ${r.ratio.toFixed(2)}x${verdict}`)
  }

  polycache.close()
  polycacheAsync.close()
  ioredis.disconnect()
  ioredisPipelined.disconnect()
  await nodeRedis.quit()
  await cacheManager.disconnect()
  await bento.disconnectAll()
  await codecBench(redis.url) // bench/node/codec.mjs: the codec path at every size
  redis.stop()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
