'use strict'
// The stampede lock (docs/FORMAT.md §6) through Node's options: two caches with their own
// connections stand for two processes; one holds the lock while its loader runs, the other
// misses, waits and resolves with the holder's value without loading.
const test = require('node:test')
const assert = require('node:assert/strict')
const { Cache } = require('..')
const { redis, uniqueNamespace } = require('./helpers')

const LOCK = { stampedeLock: true, lockLease: 10, lockTimeout: 10 }

async function until (what, done, deadlineMs = 10000) {
  const end = Date.now() + deadlineMs
  while (!done()) {
    assert.ok(Date.now() < end, `timed out waiting for: ${what}`)
    await new Promise((resolve) => setImmediate(resolve))
  }
}

for (const store of ['standalone', 'shards', 'cluster']) {
  test(`stampede lock: a waiter gets the holder's value (${store})`, async () => {
    const url = (await redis())[store]
    const namespace = uniqueNamespace(`lock-${store}`)
    const holder = await Cache.connect(url, { namespace, ...LOCK })
    const waiter = await Cache.connect(url, { namespace, ...LOCK })
    let release
    let loading
    const loadingNow = new Promise((resolve) => { loading = resolve })
    const held = holder.getOrLoad('k', () => {
      loading()
      return new Promise((resolve) => { release = () => resolve('holder') })
    }, { ttl: 60 })
    await loadingNow
    const waiting = waiter.getOrLoad('k', () => 'waiter', { ttl: 60 })
    await until('the waiter missed', () => waiter.metrics().misses >= 1)
    release()
    assert.equal(await held, 'holder')
    assert.equal(await waiting, 'holder')
    assert.equal(waiter.metrics().loads, 0)
    assert.equal(holder.metrics().locksAcquired, 1)
  })
}

test('stampede lock: a no-op on memory://', async () => {
  const cache = await Cache.connect('memory://', LOCK)
  assert.equal(await cache.getOrLoad('k', () => 1), 1)
  assert.equal(cache.metrics().locksAcquired, 0)
})
