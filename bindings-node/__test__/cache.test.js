'use strict'
// The Cache API on every store: memory://, one Redis node, 3 shards behind the ring and a
// 3-master Redis Cluster (started by the harness), in both I/O modes.
const test = require('node:test')
const assert = require('node:assert/strict')
const { Cache } = require('..')
const { redis, uniqueNamespace, waitUntil } = require('./helpers')

const stores = [
  ['memory', async () => 'memory://'],
  ['standalone', async () => (await redis()).standalone],
  ['sharded', async () => (await redis()).shards],
  ['cluster', async () => (await redis()).cluster],
]

for (const [store, url] of stores) {
  for (const io of ['auto', 'async']) {
    test(`${store} (io: ${io})`, async (t) => {
      const base = await url()
      const open = (options = {}) =>
        Cache.connect(base, { namespace: uniqueNamespace(`${store}-${io}`), io, ...options })
      const cache = await open()

      await t.test('get, set, delete, ttl', async () => {
        assert.equal(await cache.get('missing'), undefined)
        await cache.set('user:1', { name: 'Ada', langs: ['en', 'fr'], admin: true })
        assert.deepEqual(await cache.get('user:1'), { name: 'Ada', langs: ['en', 'fr'], admin: true })
        await cache.set('nil', null)
        assert.equal(await cache.get('nil'), null, 'a cached null is not a miss')
        await cache.set('short', 1, { ttl: 30 })
        const ttl = await cache.ttl('short')
        assert.ok(ttl > 25 && ttl <= 30, `ttl ${ttl}`)
        assert.equal(await cache.ttl('missing'), null)
        assert.equal(await cache.delete('user:1'), true)
        assert.equal(await cache.delete('user:1'), false)
        assert.equal(await cache.get('user:1'), undefined)
      })

      await t.test('values expire', async () => {
        // No mock clock reaches Node (core's is a Rust test hook), so poll until it is gone.
        await cache.set('brief', 'x', { ttl: 0.05 })
        await waitUntil(async () => (await cache.get('brief')) === undefined, 'the value expired', 5000)
      })

      await t.test('getMany and setMany, across slots and shards', async () => {
        const keys = Array.from({ length: 40 }, (_, i) => `many:${i}`)
        await cache.setMany(Object.fromEntries(keys.map((k, i) => [k, i])))
        await cache.setMany([['pair', 'p']], { ttl: 60 })
        const got = await cache.getMany([...keys, 'pair', 'nope'])
        assert.deepEqual(got, [...keys.map((_, i) => i), 'p', undefined])
      })

      await t.test('calls of one tick keep their order and their own results', async () => {
        const results = await Promise.all([
          cache.set('tick', 1),
          cache.get('tick'),
          cache.delete('tick'),
          cache.get('tick'),
          cache.get('').catch((err) => err.code),
          cache.set('tick', 2),
          cache.getMany(['tick', 'tick:none']),
        ])
        assert.deepEqual(results, [undefined, 1, true, undefined, 'EKEY', undefined, [2, undefined]])
      })

      await t.test('getOrLoad: loads once, then hits; concurrent callers share one load', async () => {
        const callers = 10
        const arrived = cache.metrics().misses + callers
        let calls = 0
        const loader = async () => {
          calls++
          // The latch: every caller has missed, so every one of them is waiting on a load.
          await waitUntil(() => cache.metrics().misses >= arrived, 'every caller missed')
          return { n: calls }
        }
        // The tick's first call runs on its own task and the others as one batch on one
        // task; the loader returns only once every caller missed, so each one joins it and
        // exactly one load is expected.
        const all = await Promise.all(Array.from({ length: callers }, () => cache.getOrLoad('gol', loader, { ttl: 60 })))
        assert.equal(cache.metrics().misses, arrived, 'every caller looked up the key once')
        assert.equal(calls, 1)
        assert.ok(all.every((v) => v.n === 1))
        assert.deepEqual(await cache.getOrLoad('gol', loader), { n: 1 })
        assert.equal(calls, 1)
        assert.equal(await cache.getOrLoad('sync', () => 'plain value'), 'plain value')
      })

      await t.test("a loader's rejection reaches the caller unchanged", async () => {
        class NotFound extends Error {}
        const mine = new NotFound('no such row')
        await assert.rejects(cache.getOrLoad('rejects', async () => { throw mine }), (err) => err === mine)
        const thrown = new RangeError('sync throw')
        await assert.rejects(cache.getOrLoad('throws', () => { throw thrown }), (err) => err === thrown)
        await assert.rejects(
          cache.getOrLoad('bad-value', async () => () => 1),
          (err) => err instanceof TypeError && err.code === 'ECODEC',
        )
        assert.equal(await cache.get('rejects'), undefined, 'nothing stored')
      })

      await t.test('wrap shares keys with the documented template', async () => {
        let calls = 0
        const getUser = cache.wrap(async (id, lang) => { calls++; return { id, lang } }, { key: 'user:{0}:{1}', ttl: 60 })
        assert.deepEqual(await getUser(7, 'en'), { id: 7, lang: 'en' })
        assert.deepEqual(await getUser(7, 'en'), { id: 7, lang: 'en' })
        assert.equal(calls, 1)
        assert.deepEqual(await cache.get('user:7:en'), { id: 7, lang: 'en' })
        function price(currency, amount) { calls++; return `${amount} ${currency}` }
        const cached = cache.wrap(price)
        assert.equal(await cached('EUR', 19.99), '19.99 EUR')
        assert.equal(await cached('EUR', 19.99), '19.99 EUR')
        assert.equal(calls, 2)
        // FORMAT.md §5 (templates.json "default-two"): the key without a template.
        assert.equal(await cache.get('price:8b32416dd627a2d134286160197a6ad1'), '19.99 EUR')
        assert.throws(() => cache.wrap(() => 1), (err) => err.code === 'ECONFIG')
        assert.throws(() => cache.wrap(price, { key: 'x:{0' }), (err) => err.code === 'ECONFIG')
      })

      await t.test('read-through and write-through', async () => {
        const written = []
        const rt = await open({
          loader: async (key) => `row for ${key}`,
          writer: async (key, value) => { if (value === 'reject') throw new Error('db down'); written.push([key, value]) },
        })
        assert.equal(await rt.get('a'), 'row for a')
        assert.deepEqual(await rt.getMany(['a', 'b']), ['row for a', 'row for b'])
        await rt.set('w', 1)
        assert.deepEqual(written, [['w', 1]])
        await assert.rejects(rt.set('w', 'reject'), (err) => err.message === 'db down')
        assert.equal(await rt.get('w'), 1, 'a failed write leaves the cache untouched')
        assert.ok(rt.metrics().loads >= 2)
      })

      await t.test('metrics and close', async () => {
        const m = cache.metrics()
        assert.ok(m.hits > 0 && m.misses > 0 && m.sets > 0 && m.deletes > 0, JSON.stringify(m))
        assert.equal(m.latencyUs.length, 15)
        assert.ok(cache.redisKey('k').endsWith(':{k}'))
        const closing = await open()
        closing.close()
        await assert.rejects(closing.get('k'), (err) => err.code === 'ECONNECTION')
      })
    })
  }
}

test('new Cache() is memory:// and validates options synchronously', async () => {
  const cache = new Cache()
  await cache.set('k', 'v')
  assert.equal(await cache.get('k'), 'v')
  assert.throws(() => new Cache({ nope: 1 }), (err) => err.code === 'ECONFIG')
  assert.throws(() => new Cache({ url: 'mongodb://x' }), (err) => err.code === 'ECONFIG')
  assert.throws(() => new Cache({ io: 'sideways' }), (err) => err.code === 'ECONFIG')
  assert.throws(() => new Cache({ loader: 'not a function' }), (err) => err.code === 'ECONFIG')
  await assert.rejects(cache.set('k', 1, { ttl: -1 }), (err) => err.code === 'ECONFIG')
  await assert.rejects(cache.set('k', Symbol('s')), (err) => err instanceof TypeError && err.code === 'ECODEC')
})

test('the hot methods are each cache\'s own: unlisted, detachable, and the prototype\'s still work', async () => {
  const made = new Cache()
  const connected = await Cache.connect('memory://')
  for (const [i, cache] of [made, connected].entries()) {
    assert.deepEqual(Object.keys(cache), [], 'nothing enumerable')
    for (const name of ['get', 'getMany', 'set', 'setMany', 'delete', 'ttl', 'getOrLoad']) {
      const own = Object.getOwnPropertyDescriptor(cache, name)
      assert.equal(typeof own?.value, 'function', `${name} is an own function`)
      assert.equal(own.enumerable, false, `${name} is not enumerable`)
    }
    const { get, set, getMany, getOrLoad } = cache
    await set('k', i)
    assert.equal(await get('k'), i, 'a detached method keeps its cache')
    assert.deepEqual(await getMany(['k', 'nope']), [i, undefined])
    assert.equal(await getOrLoad('loaded', async () => 'v'), 'v')
    assert.equal(await Cache.prototype.get.call(cache, 'k'), i)
    assert.ok(made.get !== connected.get, 'each cache has its own')
  }
  assert.equal(await made.get('k'), 0, 'the two memory:// caches are apart')
  assert.throws(() => Cache.prototype.get.call({}, 'k'))
})

test('a cache nobody holds is collected (its own methods do not keep it)', async () => {
  const v8 = require('node:v8')
  v8.setFlagsFromString('--expose-gc')
  const gc = require('node:vm').runInNewContext('gc')
  let collected = 0
  const registry = new FinalizationRegistry(() => { collected++ })
  await (async () => {
    for (let i = 0; i < 4; i++) {
      const cache = new Cache()
      await cache.set('k', i)
      assert.equal(await cache.get('k'), i)
      registry.register(cache, i)
    }
  })()
  await waitUntil(() => {
    gc()
    return collected === 4
  }, 'the caches are collected', 5000)
})

test('a subclass\'s overrides of the hot methods are the ones called', async () => {
  class Counting extends Cache {
    constructor () {
      super()
      this.gets = 0
    }

    get (key) {
      this.gets++
      return super.get(key)
    }
  }
  const cache = new Counting()
  await cache.set('k', 1)
  assert.equal(await cache.get('k'), 1)
  assert.equal(cache.gets, 1, 'the override ran')
  assert.equal(Object.getOwnPropertyDescriptor(cache, 'get'), undefined, 'no own get hides it')
})
