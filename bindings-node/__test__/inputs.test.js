'use strict'
// Hostile and careless input (issue 9): argument errors are rejected promises with E*
// codes, TTLs are checked by core, loader rejections reach the caller unchanged, sparse
// and oversized arrays are refused quickly, metrics count each call once.
const test = require('node:test')
const assert = require('node:assert/strict')
const { Cache } = require('..')

/** Calls `f`; a synchronous throw fails the test (every method must return a promise). */
function promised(f) {
  let result
  assert.doesNotThrow(() => { result = f() })
  assert.ok(result instanceof Promise, 'a promise')
  return result
}

const code = (expected) => (err) => {
  assert.equal(err.code, expected, `${err.code}: ${err.message}`)
  return true
}

test('argument errors are rejected promises with E* codes, never synchronous throws', async () => {
  const cache = new Cache()
  await assert.rejects(promised(() => cache.get(42)), code('EKEY'))
  await assert.rejects(promised(() => cache.get()), code('EKEY'))
  await assert.rejects(promised(() => cache.get({})), code('EKEY'))
  await assert.rejects(promised(() => cache.getMany('k')), code('EKEY'))
  await assert.rejects(promised(() => cache.getMany(['a', 1])), code('EKEY'))
  await assert.rejects(promised(() => cache.set(1, 'v')), code('EKEY'))
  await assert.rejects(promised(() => cache.set('k', 'v', 5)), code('ECONFIG'))
  await assert.rejects(promised(() => cache.set('k', 'v', { ttl: '5' })), code('ECONFIG'))
  await assert.rejects(promised(() => cache.set('k', Symbol('s'))), code('ECODEC'))
  await assert.rejects(promised(() => cache.setMany(5)), code('ECODEC'))
  await assert.rejects(promised(() => cache.setMany({ a: 1 }, 'x')), code('ECONFIG'))
  await assert.rejects(promised(() => cache.delete(null)), code('EKEY'))
  await assert.rejects(promised(() => cache.ttl(7n)), code('EKEY'))
  await assert.rejects(promised(() => cache.getOrLoad(1, () => 1)), code('EKEY'))
  await assert.rejects(promised(() => cache.getOrLoad('k', 'not a function')), code('ECONFIG'))
  await assert.rejects(promised(() => cache.getOrLoad('k', () => 1, { ttl: -1 })), code('ECONFIG'))
  await assert.rejects(promised(() => Cache.connect(42)), code('ECONFIG'))
  await assert.rejects(promised(() => Cache.connect('memory://', 'options')), code('ECONFIG'))
  // Synchronous APIs throw, with E* codes all the same.
  assert.throws(() => cache.redisKey(1), code('EKEY'))
  assert.throws(() => cache.wrap('fn'), code('ECONFIG'))
  assert.throws(() => cache.wrap(function f() {}, { key: 1 }), code('ECONFIG'))
  assert.throws(() => new Cache('memory://'), code('ECONFIG'))
  assert.throws(() => new Cache({ io: 5 }), code('ECONFIG'))
  // A wrapped function's own errors reject too.
  const wrapped = cache.wrap(async (a) => a, { key: 'w:{1}' })
  await assert.rejects(promised(() => wrapped(1)), code('EKEY'))
})

test('TTLs: NaN, negative, infinite and huge are ECONFIG', async () => {
  for (const ttl of [NaN, -1, Infinity, -Infinity, 1e17, 18446744073709553]) {
    assert.throws(() => new Cache({ ttl }), code('ECONFIG'), `new Cache({ ttl: ${ttl} })`)
  }
  const cache = new Cache()
  for (const ttl of [NaN, -0.5, Infinity, 1e17, 18446744073709553]) {
    await assert.rejects(cache.set('k', 1, { ttl }), code('ECONFIG'), `set ttl ${ttl}`)
    await assert.rejects(cache.setMany({ k: 1 }, { ttl }), code('ECONFIG'), `setMany ttl ${ttl}`)
    await assert.rejects(cache.getOrLoad('k', () => 1, { ttl }), code('ECONFIG'), `getOrLoad ttl ${ttl}`)
    assert.throws(() => cache.wrap(function f() {}, { ttl }), code('ECONFIG'), `wrap ttl ${ttl}`)
  }
})

test('a per-call ttl of 0 means what the config\'s 0 means: no expiry', async () => {
  const expiring = new Cache({ ttl: 60 })
  await expiring.set('forever', 1, { ttl: 0 })
  // No expiry at all (PTTL -1 reads as null); before, ttl 0 was sent as PX 1.
  assert.equal(await expiring.ttl('forever'), null, 'per-call ttl 0 means no expiry, as in the config')
  assert.equal(await expiring.get('forever'), 1)
  await expiring.set('default', 1)
  assert.ok((await expiring.ttl('default')) > 50)
})

test("a loader's rejection value reaches the caller unchanged", async () => {
  const cache = new Cache()
  const status = { status: 404 }
  await assert.rejects(cache.getOrLoad('a', () => Promise.reject(42)), (err) => err === 42)
  await assert.rejects(cache.getOrLoad('b', async () => { throw status }), (err) => err === status)
  await assert.rejects(cache.getOrLoad('c', () => { throw 'plain string' }), (err) => err === 'plain string')
  await assert.rejects(cache.getOrLoad('d', () => Promise.reject(undefined)), (err) => err === undefined)
  const mine = new TypeError('mine')
  await assert.rejects(cache.getOrLoad('e', async () => { throw mine }), (err) => err === mine)
  // Concurrent callers sharing one load all get the same value.
  const shared = { shared: true }
  const results = await Promise.allSettled([1, 2, 3].map(() => cache.getOrLoad('f', () => Promise.reject(shared))))
  assert.ok(results.every((r) => r.status === 'rejected' && r.reason === shared))
  // The read-through loader and the writer too.
  const rt = new Cache({ loader: () => Promise.reject(status), writer: () => Promise.reject(7) })
  await assert.rejects(rt.get('x'), (err) => err === status)
  await assert.rejects(rt.set('x', 1), (err) => err === 7)
  const wrapped = cache.wrap(async function find() { throw status })
  await assert.rejects(wrapped(1), (err) => err === status)
})

test('sparse and oversized arrays are ECODEC, refused quickly', async () => {
  const cache = new Cache()
  const sparse = []
  sparse[2 ** 32 - 2] = 1
  const started = performance.now()
  await assert.rejects(cache.set('sparse', sparse), code('ECODEC'))
  await assert.rejects(cache.set('holes', new Array(1e7)), code('ECODEC'))
  const holeInside = [1, 2, 3]
  holeInside[5] = 6
  await assert.rejects(cache.set('hole', holeInside), code('ECODEC'))
  await assert.rejects(cache.set('nested', { a: [[, 1]] }), code('ECODEC'))
  // Not a speed assertion: the refusals must not walk billions of holes (minutes before).
  assert.ok(performance.now() - started < 5000)
  // The longest array is maxValueBytes / 32 (a decoder's slot per item).
  const small = new Cache({ maxValueBytes: 32 * 1000 })
  await assert.rejects(small.set('long', new Array(1001).fill(0)), code('ECODEC'))
  await assert.rejects(small.set('wide', Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`k${i}`, 0]))), code('ECODEC'))
  // The refusal names the object's whole count (the walk stops reading at the cap).
  await assert.rejects(small.set('wider', Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`k${i}`, 0]))),
    /an object of 1500 properties cannot be cached \(at most 1000/)
  await small.set('fits', new Array(100).fill(0))
  // An explicit undefined inside an array is nil, as documented; holes are not.
  await cache.set('explicit', [1, undefined, 3])
  assert.deepEqual(await cache.get('explicit'), [1, null, 3])
})

test("nesting is bounded by core's decoder limit (msgpack MAX_DEPTH = 256)", async () => {
  const cache = new Cache()
  const nest = (depth) => {
    let v = 1
    for (let i = 0; i < depth; i++) v = [v]
    return v
  }
  await cache.set('deep', nest(256)) // the leaf is at depth 256
  assert.deepEqual(await cache.get('deep'), nest(256))
  await assert.rejects(cache.set('deeper', nest(257)), code('ECODEC'))
})

test('10,000 getOrLoad calls count 10,000 misses, not 20,000', async () => {
  const cache = new Cache()
  await Promise.all(Array.from({ length: 10000 }, (_, i) => cache.getOrLoad(`m${i}`, () => i)))
  const m = cache.metrics()
  assert.equal(m.misses, 10000)
  assert.equal(m.loads, 10000)
  assert.equal(m.hits, 0)
})

test('a loader that asks for its own key is refused with ELOADER, not a deadlock', async () => {
  const cache = new Cache()
  const within = (promise) => Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error('still waiting after 5 s: a deadlock')), 5000).unref()),
  ])
  const loader = async () => (await cache.getOrLoad('self', loader)) + 1
  await assert.rejects(within(cache.getOrLoad('self', loader)), code('ELOADER'))
  // Another key inside a load is fine, and so is the same key once the load is done.
  assert.equal(await within(cache.getOrLoad('outer', async () => (await cache.getOrLoad('inner', () => 1)) + 1)), 2)
  assert.equal(await cache.getOrLoad('outer', () => 0), 2)
  // Read-through: the cache's loader asking for the key it loads.
  const rt = new Cache({ loader: async (key) => (await rt.get(key)) ?? 'never' })
  await assert.rejects(within(rt.get('k')), code('ELOADER'))
  // wrap: a memoized function calling itself with the same arguments.
  const fact = cache.wrap(async (n) => (n <= 1 ? 1 : n * await fact(n)), { key: 'fact:{0}' })
  await assert.rejects(within(fact(3)), code('ELOADER'))
})
