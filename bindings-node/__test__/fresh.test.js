'use strict'
// Freshness from Node: the per-call options of `getOrLoad`, `getEntry` and `wrap`, and the
// `Entry` that `getEntry` resolves to. The rules are core's (core/tests/fresh.rs, with a
// mock clock); these tests check that every JS form hands its options to core and reports
// core's answer. Time passes for real (a short `freshFor`); waits poll with a deadline.
const test = require('node:test')
const assert = require('node:assert/strict')
const { Cache, NOT_FOUND } = require('..')
const { redis, uniqueNamespace, waitUntil } = require('./helpers')

async function urls () {
  const endpoints = await redis()
  return { memory: 'memory://', standalone: endpoints.standalone, shards: endpoints.shards, cluster: endpoints.cluster }
}

for (const store of ['memory', 'standalone', 'shards', 'cluster']) {
  test(`per-call freshFor makes the value stale, getEntry says so (${store})`, async () => {
    const url = (await urls())[store]
    const cache = await Cache.connect(url, { namespace: uniqueNamespace(`fresh-${store}`), ttl: 60 })
    const first = await cache.getEntry('k', () => 1, { freshFor: 0.05 })
    assert.deepEqual(first, { value: 1, found: true, stale: false, freshness: 'fresh', age: 0 })
    let stale
    await waitUntil(async () => {
      stale = await cache.getEntry('k', () => 2, { freshFor: 0.05 })
      return stale.stale
    }, 'the value is past the call\'s freshFor')
    assert.equal(stale.value, 1)
    assert.equal(stale.freshness, 'stale')
    assert.ok(stale.age >= 0.05, `age ${stale.age}`)
    await waitUntil(async () => (await cache.get('k')) === 2, 'the refresh stores its value')
    assert.ok(cache.metrics().staleServed >= 1)
  })

  test(`getEntry reports fail-safe after a loader failure with maxStale (${store})`, async () => {
    const url = (await urls())[store]
    const cache = await Cache.connect(url, { namespace: uniqueNamespace(`failsafe-${store}`) })
    const first = await cache.getEntry('k', () => 'good', { ttl: 0.05, maxStale: 60 })
    assert.equal(first.freshness, 'fresh')
    const failing = () => { throw new Error('the database is down') }
    let entry
    await waitUntil(async () => {
      entry = await cache.getEntry('k', failing, { maxStale: 60, failSafeBackoff: 60 })
      return entry.freshness === 'fail-safe'
    }, 'the key expired and the loader failed')
    assert.equal(entry.value, 'good')
    assert.equal(entry.stale, true)
    assert.ok(entry.age >= 0.05, `age ${entry.age}`)
    assert.equal(await cache.getOrLoad('k', failing, { maxStale: 60 }), 'good', 'backing off')
    assert.ok(cache.metrics().failSafeServed >= 2)
    // Without fail-safe for this call, the loader's own error comes through.
    await assert.rejects(cache.getOrLoad('k', failing, { maxStale: 0 }), /database is down/)
  })

  test(`wrap passes its options to every call (${store})`, async () => {
    const url = (await urls())[store]
    const cache = await Cache.connect(url, { namespace: uniqueNamespace(`wrapfresh-${store}`), ttl: 60 })
    let calls = 0
    const double = cache.wrap((n) => { calls += 1; return 2 * n }, { key: 'double:{0}', freshFor: 0.05 })
    assert.equal(await double(4), 8)
    await waitUntil(async () => (await double(4)) === 8 && calls >= 2, 'a stale call refreshes')
  })
}

test('getOrLoad with its own freshFor skips the near tier', async () => {
  const url = (await urls()).standalone
  const cache = await Cache.connect(url, { namespace: uniqueNamespace('freshnear'), ttl: 60, nearCache: 100 })
  assert.equal(await cache.getOrLoad('k', () => 1, { freshFor: 0.05 }), 1)
  let calls = 0
  await waitUntil(async () => {
    await cache.getOrLoad('k', () => { calls += 1; return 2 }, { freshFor: 0.05 })
    return calls > 0
  }, 'a stale read starts a refresh')
  await waitUntil(async () => (await cache.get('k')) === 2, 'the refresh stores its value')
})

test('bad per-call options reject with ECONFIG', async () => {
  const cache = new Cache({ namespace: uniqueNamespace('badopts') })
  const bad = [
    { freshFor: -1 },
    { maxStale: 'soon' },
    { softTimeout: NaN },
    { hardTimeout: Infinity },
    { failSafeBackoff: true },
    { earlyRefreshBeta: -0.5 },
    { ttl: -1 },
    { freshfor: 5 }, // a misspelt name is refused, not ignored (as in Python)
    { lockLease: 5 }, // a cache option, not a per-call one
  ]
  for (const options of bad) {
    const what = JSON.stringify(options)
    await assert.rejects(cache.getOrLoad('k', () => 1, options), (err) => err.code === 'ECONFIG', what)
    await assert.rejects(cache.getEntry('k', () => 1, options), (err) => err.code === 'ECONFIG', what)
    assert.throws(() => cache.wrap(function f () { return 1 }, options), (err) => err.code === 'ECONFIG', what)
  }
  assert.equal(cache.metrics().loads, 0)
})

for (const store of ['memory', 'standalone', 'shards', 'cluster']) {
  test(`a loader's NOT_FOUND is cached for negativeTtl (${store})`, async () => {
    const url = (await urls())[store]
    const cache = await Cache.connect(url, { namespace: uniqueNamespace(`negative-${store}`), negativeTtl: 60 })
    assert.equal(NOT_FOUND, Symbol.for('polycache.NOT_FOUND'))
    let calls = 0
    const missing = async () => { calls += 1; return NOT_FOUND }
    assert.equal(await cache.getOrLoad('k', missing), undefined)
    assert.equal(await cache.getOrLoad('k', () => { calls += 1; return NOT_FOUND }), undefined)
    const entry = await cache.getEntry('k', missing)
    assert.deepEqual(entry, { value: null, found: false, stale: false, freshness: 'fresh', age: null })
    assert.equal(calls, 1, 'answered from the cached not-found')
    const misses = cache.metrics().misses
    assert.equal(await cache.get('k'), undefined)
    assert.deepEqual(await cache.getMany(['k']), [undefined])
    const m = cache.metrics()
    assert.equal(m.misses, misses, 'a negative hit is not a miss')
    assert.deepEqual([m.negativeStored, m.negativeHits], [1, 4])
    assert.equal((await cache.getEntry('v', () => 1)).found, true)
    // null is a value: cached like any other.
    assert.equal(await cache.getOrLoad('null', () => null), null)
    assert.equal(await cache.getOrLoad('null', missing), null)
    assert.equal(calls, 1)
    // wrap: a function returning NOT_FOUND resolves to undefined, once.
    let wrapped = 0
    const user = cache.wrap((id) => { wrapped += 1; return NOT_FOUND }, { key: 'user:{0}' })
    assert.equal(await user(5), undefined)
    assert.equal(await user(5), undefined)
    assert.equal(wrapped, 1)
  })
}

test('NOT_FOUND without negativeTtl is returned, not stored', async () => {
  const cache = new Cache({ namespace: uniqueNamespace('negative-off') })
  let calls = 0
  const missing = () => { calls += 1; return NOT_FOUND }
  assert.equal(await cache.getOrLoad('k', missing), undefined)
  assert.equal(await cache.getOrLoad('k', missing), undefined)
  assert.equal(calls, 2)
  assert.equal(await cache.getOrLoad('k', missing, { negativeTtl: 60 }), undefined)
  assert.equal(await cache.getOrLoad('k', missing), undefined)
  assert.equal(calls, 3)
})
