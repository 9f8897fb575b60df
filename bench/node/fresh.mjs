// Freshness and the stampede lock (issue 12) in Node, side by side with bentocache where
// it has the feature. One Redis (the harness's, or POLYCACHE_TEST_REDIS's standalone).
//
//   node bench/node/fresh.mjs          (make bench-node runs it)
//
// 1. Reads during a background refresh, loader 50 ms. Per episode a key is written with a
//    20 ms freshness, becomes stale, and is read in a loop through getOrLoad until the
//    refreshed value shows: every read before that ran while the refresh did. As many
//    reads of a fresh key are interleaved. p50 / p99 / max of both. Peer: bentocache
//    getOrSet with a grace period and `timeout: 0` (its documented stale-while-revalidate:
//    the graced value at once, the factory in the background), redis as its only tier.
//    Apples to apples: both answer from Redis and refresh off the caller.
// 2. The stampede lock's added latency on a miss: getOrLoad of a new key each call (a
//    loader resolving at once), stampedeLock on vs off, p50 / p99. bentocache's stampede
//    protection is an in-process mutex (nothing in Redis), so it has no cross-process lock
//    to compare: its getOrSet miss is printed for reference only.
import { BentoCache, bentostore } from 'bentocache'
import { redisDriver } from 'bentocache/drivers/redis'

import { binding, percentile, redisServer, sleep, sortedCopy, timed, VALUE } from './common.mjs'

const { Cache } = binding
const LOAD_MS = 50
const FRESH_MS = 20
const EPISODES = 20
const MISSES = 2000
const OLD = 'old'
const NEW = 'new'

let loaderCalls = 0
const slowLoad = () => {
  loaderCalls++
  return sleep(LOAD_MS).then(() => NEW)
}

function stats (ms) {
  const s = sortedCopy(ms)
  const f = (x) => x.toFixed(3).padStart(8)
  return `${f(percentile(s, 50))} ${f(percentile(s, 99))} ${f(s.at(-1))}   (${s.length.toLocaleString('en-US')} reads)`
}

const row = (label, ms) => console.log(`  ${label.padEnd(62)} ${stats(ms)}`)
const header = () => console.log(`  ${''.padEnd(62)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(8)}`)
const p = (ms, q) => percentile(sortedCopy(ms), q)

/** Reads of a stale key while its refresh runs, and as many of a fresh key (ms). */
async function episodes (makeStale, read, freshKey) {
  const during = []
  const fresh = []
  for (let i = 0; i < EPISODES; i++) {
    const key = `swr:${i}`
    await makeStale(key)
    await sleep(FRESH_MS * 1.25) // past its freshness: the next read is stale
    let reads = 0
    for (;;) {
      const [ms, got] = await timed(() => read(key))
      if (got === NEW) break // the refresh stored its value
      if (got !== OLD) throw new Error(`unexpected ${got}`)
      during.push(ms)
      reads++
    }
    for (let r = 0; r < reads; r++) fresh.push((await timed(() => read(freshKey)))[0])
  }
  return [during, fresh]
}

async function refreshReads (url, connection, summary) {
  console.log(`\nreads during a background refresh (loader ${LOAD_MS} ms, ${EPISODES} refreshes), ms`)
  header()
  const ns = 'bench-swr'
  const writer = await Cache.connect(url, { namespace: ns, freshFor: FRESH_MS / 1000 })
  const reader = await Cache.connect(url, { namespace: ns, freshFor: 3600 })
  await reader.set('fresh', OLD, { ttl: 600 })
  const before = reader.metrics().backgroundRefreshes
  const [during, fresh] = await episodes(
    (k) => writer.set(k, OLD, { ttl: 600 }),
    (k) => reader.getOrLoad(k, slowLoad, { ttl: 600 }),
    'fresh',
  )
  await sleep(LOAD_MS * 2) // a refresh started by the last stale read ends
  const calls = loaderCalls
  row('polycache getOrLoad, stale key, refresh running', during)
  row('polycache getOrLoad, fresh key', fresh)
  console.log(`  background refreshes ${reader.metrics().backgroundRefreshes - before}, loader calls ${calls}, for ${EPISODES} stale keys`)

  const bento = new BentoCache({
    default: 'redis',
    grace: '1h',
    timeout: 0,
    stores: { redis: bentostore().useL2Layer(redisDriver({ connection })) },
  })
  await bento.set({ key: 'fresh', value: OLD, ttl: '1h' })
  const [bDuring, bFresh] = await episodes(
    (k) => bento.set({ key: k, value: OLD, ttl: FRESH_MS }),
    (k) => bento.getOrSet({ key: k, factory: slowLoad, ttl: '1h' }),
    'fresh',
  )
  row('bentocache getOrSet (grace, timeout 0), stale, refresh running', bDuring)
  row('bentocache getOrSet, fresh key', bFresh)
  await sleep(LOAD_MS * 2)
  console.log(`  bentocache loader calls ${loaderCalls - calls} for ${EPISODES} stale keys`)
  summary.push(['polycache p99 during refresh / p99 fresh', p(during, 99) / p(fresh, 99)])
  summary.push(['bentocache p99 during refresh / p99 fresh', p(bDuring, 99) / p(bFresh, 99)])
  summary.push(['polycache / bentocache p99 during refresh', p(during, 99) / p(bDuring, 99)])
  reader.close()
  writer.close()
  await bento.disconnectAll()
}

async function lockMisses (url, connection, summary) {
  console.log(`\nmiss latency, stampede lock on vs off (${MISSES.toLocaleString('en-US')} misses each, loader at once), ms`)
  header()
  const loader = () => VALUE
  const on = await Cache.connect(url, { namespace: 'bench-lock-on', stampedeLock: true })
  const off = await Cache.connect(url, { namespace: 'bench-lock-off' })
  const withLock = []
  const without = []
  for (let i = 0; i < MISSES; i++) {
    withLock.push((await timed(() => on.getOrLoad(`on:${i}`, loader, { ttl: 60 })))[0])
    without.push((await timed(() => off.getOrLoad(`off:${i}`, loader, { ttl: 60 })))[0])
  }
  if (on.metrics().locksAcquired < MISSES) throw new Error(`the lock was not taken: ${JSON.stringify(on.metrics())}`)
  row('polycache getOrLoad, lock on', withLock)
  row('polycache getOrLoad, lock off', without)
  const added = [p(withLock, 50) - p(without, 50), p(withLock, 99) - p(without, 99)]
  console.log(`  ${'  added by the lock'.padEnd(62)} ${added.map((x) => x.toFixed(3).padStart(8)).join(' ')}`)
  summary.push(['polycache added p50 / p99 by the lock, ms', added])
  on.close()
  off.close()
  const bento = new BentoCache({
    default: 'redis',
    stores: { redis: bentostore().useL2Layer(redisDriver({ connection })) },
  })
  const misses = []
  for (let i = 0; i < MISSES; i++) misses.push((await timed(() => bento.getOrSet({ key: `miss:${i}`, factory: loader, ttl: '1m' })))[0])
  row('bentocache getOrSet miss (in-process lock only; reference)', misses)
  await bento.disconnectAll()
}

async function run (url) {
  const { hostname, port } = new URL(url)
  const connection = { host: hostname, port: Number(port) }
  const summary = []
  await refreshReads(url, connection, summary)
  await lockMisses(url, connection, summary)
  console.log('\nsummary (freshness and the stampede lock)')
  for (const [what, value] of summary) {
    const shown = Array.isArray(value) ? value.map((x) => x.toFixed(3)).join(' / ') : value.toFixed(2)
    console.log(`  ${what.padEnd(62)} ${shown.padStart(8)}`)
  }
}

const server = await redisServer()
console.log(`bench-node fresh: Node ${process.version}, Redis ${server.url}`)
try {
  await run(server.url)
} finally {
  server.stop()
}
