'use strict'
// The near tier from Node: a hit settles on the JS thread with no store round trip (the
// latency histogram counts every store round trip, and it does not move), `wrap` uses it,
// and a write by another client evicts.
const test = require('node:test')
const assert = require('node:assert/strict')
const { Cache } = require('..')
const v8 = require('node:v8')
const vm = require('node:vm')
const { redis, uniqueNamespace } = require('./helpers')

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const storeTrips = (cache) => cache.metrics().latencyUs.reduce((sum, [, n]) => sum + n, 0)

async function eventually (what, done, deadlineMs = 10000) {
  const end = Date.now() + deadlineMs
  while (!(await done())) {
    assert.ok(Date.now() < end, `timed out waiting for: ${what}`)
    await sleep(5)
  }
}

for (const store of ['standalone', 'shards', 'cluster']) {
  test(`near tier (${store})`, async (t) => {
    const url = (await redis())[store]
    const namespace = uniqueNamespace(`near-${store}`)
    const cache = await Cache.connect(url, { namespace, nearCache: 1000 })
    const writer = await Cache.connect(url, { namespace })

    await t.test('a hit settles without Redis', async () => {
      await writer.set('user', { name: 'Ada', langs: ['en', 'fr'] })
      // That write's own push must not land after the entry is stored (and evict it).
      await eventually('the write\'s push', async () => cache.metrics().nearInvalidations >= 1)
      await eventually('near entry', async () => {
        await cache.get('user')
        const before = cache.metrics().nearHits
        await cache.get('user')
        return cache.metrics().nearHits > before
      })
      const trips = storeTrips(cache)
      for (let i = 0; i < 100; i++) {
        assert.deepEqual(await cache.get('user'), { name: 'Ada', langs: ['en', 'fr'] })
      }
      assert.equal(storeTrips(cache), trips, 'a near hit went to Redis')
      assert.ok(cache.metrics().nearEntries >= 1)
    })

    await t.test('another client evicts', async () => {
      await writer.set('user', { name: 'Grace' })
      await eventually('evicted', async () => (await cache.get('user'))?.name === 'Grace')
      assert.ok(cache.metrics().nearInvalidations >= 1)
      await writer.delete('user')
      await eventually('deleted', async () => (await cache.get('user')) === undefined)
    })

    await t.test('a set queued in the same tick wins over a near hit', async () => {
      await writer.set('k', 1)
      await eventually('near entry', async () => {
        await cache.get('k')
        const before = cache.metrics().nearHits
        await cache.get('k')
        return cache.metrics().nearHits > before
      })
      const written = cache.set('k', 2)
      assert.equal(await cache.get('k'), 2)
      await written
    })

    await t.test('wrap uses the near tier', async () => {
      let calls = 0
      const square = cache.wrap((n) => { calls++; return n * n }, { key: 'sq:{0}', ttl: 60 })
      const pushes = cache.metrics().nearInvalidations
      assert.equal(await square(7), 49)
      // The load's own write is pushed back; wait for it so it cannot evict later.
      await eventually('the load\'s push', async () => cache.metrics().nearInvalidations > pushes)
      await eventually('wrap near hit', async () => {
        const before = cache.metrics().nearHits
        assert.equal(await square(7), 49)
        return cache.metrics().nearHits > before
      })
      const trips = storeTrips(cache)
      for (let i = 0; i < 100; i++) assert.equal(await square(7), 49)
      assert.equal(storeTrips(cache), trips)
      assert.equal(calls, 1)
    })

    await t.test('a hit returns what was stored, the same object each hit until a write', async () => {
      const stored = {
        id: 42,
        name: 'Ada',
        score: 98.5,
        big: 2n ** 60n,
        none: null,
        bytes: Buffer.from([1, 2, 3]),
        nested: { roles: ['admin', 'editor'], ok: true, ['__proto__']: 'own' },
      }
      await writer.set('obj', stored)
      await eventually('near entry', async () => {
        await cache.get('obj')
        const before = cache.metrics().nearHits
        await cache.get('obj')
        return cache.metrics().nearHits > before
      })
      const first = await cache.get('obj')
      assert.deepEqual(first, stored)
      assert.ok(Object.hasOwn(first.nested, '__proto__'))
      assert.equal(await cache.get('obj'), first, 'near hits return one shared object')
      assert.equal(await cache.getOrLoad('obj', () => 0), first)

      // A write by another client drops the entry (and its object, released on this
      // thread); the next hits share a new object holding the new value.
      await writer.set('obj', { name: 'Grace' })
      await eventually('evicted', async () => (await cache.get('obj'))?.name === 'Grace')
      await eventually('near entry again', async () => {
        const before = cache.metrics().nearHits
        await cache.get('obj')
        return cache.metrics().nearHits > before
      })
      const second = await cache.get('obj')
      assert.notEqual(second, first)
      assert.deepEqual(second, { name: 'Grace' })
      assert.equal(await cache.get('obj'), second)
    })

    await t.test('an entry dropped off the JS thread releases its object', async () => {
      await writer.set('held', { n: 1 })
      await eventually('near entry', async () => {
        await cache.get('held')
        const before = cache.metrics().nearHits
        await cache.get('held')
        return cache.metrics().nearHits > before
      })
      let collected = false
      const registry = new FinalizationRegistry(() => { collected = true })
      registry.register(await cache.get('held'), 'held')
      // The tracking thread drops the entry; its reference is deleted on this thread.
      await writer.set('held', { n: 2 })
      await eventually('evicted', async () => (await cache.get('held'))?.n === 2)
      await eventually('the old object collected', async () => {
        gc()
        return collected
      })
    })

    cache.close()
    writer.close()
  })
}
