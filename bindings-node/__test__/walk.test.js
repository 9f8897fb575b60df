'use strict'
// Reading JS values (docs/node.md, "Values in and out"): one JS walk writes a value's tape and
// core applies the rules. The edges the walk must tell apart: cycles against shared objects,
// the nesting limit, getters and proxies, holes against undefined, toJSON, lone surrogates,
// Buffer views, -0 and NaN, bigints at the model's limits, and a walk started from inside
// another (a getter that caches a value).
const test = require('node:test')
const assert = require('node:assert/strict')
const { Cache, encodeEnvelope, decodeEnvelope } = require('..')
const { same, redis, uniqueNamespace } = require('./helpers')

const roundtrip = (value) => decodeEnvelope(encodeEnvelope(value)).value
const payload = (v) => encodeEnvelope(v, { compression: 'none' }).subarray(24).toString('hex')
/** Asserts `value` is refused, by `encodeEnvelope` and by `set`, with a message matching `why`. */
async function refused (value, why) {
  const check = (err) => err instanceof TypeError && err.code === 'ECODEC' && why.test(err.message)
  assert.throws(() => encodeEnvelope(value), check)
  await assert.rejects(new Cache().set('k', value), check)
}

test('a cycle is refused; the same object twice is not a cycle', async () => {
  const cyclic = { a: [] }
  cyclic.a.push({ back: cyclic })
  await refused(cyclic, /cyclic/)
  const self = []
  self.push(self)
  await refused(self, /cyclic/)
  const shared = { x: 1 }
  assert.deepEqual(roundtrip([shared, shared, { s: shared }]), [{ x: 1 }, { x: 1 }, { s: { x: 1 } }])
})

test('nesting: 256 levels of arrays or objects are cached, 257 are not', async () => {
  const arrays = (depth) => {
    let v = 1
    for (let i = 0; i < depth; i++) v = [v]
    return v
  }
  const objects = (depth) => {
    let v = 1
    for (let i = 0; i < depth; i++) v = { v }
    return v
  }
  for (const nest of [arrays, objects]) {
    assert.deepEqual(roundtrip(nest(256)), nest(256))
    await new Cache().set('deep', nest(256))
    await refused(nest(257), /nested deeper than 256 levels/)
  }
  // An empty container at the 257th level is still a level too deep, as before.
  let v = []
  for (let i = 0; i < 256; i++) v = [v]
  await refused(v, /nested deeper than 256/)
})

test('getters run, proxies are read through, a throwing getter throws its own error', async () => {
  let calls = 0
  const withGetter = { a: 1, get b () { calls++; return [2, 'two'] } }
  assert.deepEqual(roundtrip(withGetter), { a: 1, b: [2, 'two'] })
  assert.equal(calls, 1)
  const hidden = Object.defineProperty({ shown: 1 }, 'hidden', { value: 2, enumerable: false })
  assert.deepEqual(Object.keys(roundtrip(hidden)), ['shown'])
  const symbolKeyed = { [Symbol('s')]: 1, k: 2 }
  assert.deepEqual(roundtrip(symbolKeyed), { k: 2 })
  const proxy = new Proxy({ a: 1, b: 2 }, { get: (t, k) => (typeof t[k] === 'number' ? t[k] * 10 : t[k]) })
  assert.deepEqual(roundtrip(proxy), { a: 10, b: 20 })
  // A proxy of an array is read as the array it shows (Array.isArray sees through it).
  assert.deepEqual(roundtrip(new Proxy([1, 2], {})), [1, 2])
  const boom = new Error('boom')
  const throwing = { ok: 1, get bad () { throw boom } }
  assert.throws(() => encodeEnvelope(throwing), (err) => err === boom)
  // The walk recovers: the next value is read from a clean state.
  assert.deepEqual(roundtrip({ after: [1] }), { after: [1] })
})

test('keys repeated across objects, at every depth and position, are read back exactly', () => {
  // The walk writes a key equal to the last one at its position and depth once; objects
  // whose keys agree in part, in another order, deeper or shallower must all come back.
  const value = [
    { a: 1, b: { a: 2, b: { a: 3 } }, c: 3 },
    { a: 4, x: { b: 5, a: 6 }, c: 7 },
    { b: 8, a: 9 },
    { a: 10, b: { a: 11, b: { c: 12 } }, c: 13, d: 14 },
    {},
    { a: { a: { a: { a: 15 } } } },
    { a: 16, b: 17, c: 18 },
  ]
  for (let round = 0; round < 3; round++) {
    const back = roundtrip(value)
    assert.deepEqual(back, value)
    assert.deepEqual(back.map((o) => Object.keys(o)), value.map((o) => Object.keys(o)))
    assert.deepEqual(Object.keys(back[1].x), ['b', 'a'])
  }
  // The same keys through the Object.keys path (an enumerable key on Object.prototype).
  Object.prototype.polluted = 1 // eslint-disable-line no-extend-native
  try {
    assert.deepEqual(JSON.stringify(roundtrip(value)), JSON.stringify(value))
  } finally {
    delete Object.prototype.polluted
  }
})

test('an enumerable key on Object.prototype is not read as an own key', () => {
  // The walk lists a plain object's keys with for…in only while Object.prototype has no
  // enumerable key; otherwise with Object.keys, so an inherited key is never written.
  const value = { a: 1, nested: { b: [2, { c: 3 }] } }
  Object.prototype.polluted = 'inherited' // eslint-disable-line no-extend-native
  try {
    assert.deepEqual(roundtrip(value), value)
    assert.deepEqual(Object.keys(roundtrip(value).nested), ['b'])
  } finally {
    delete Object.prototype.polluted
  }
  assert.deepEqual(roundtrip(value), value)
})

test('a getter that caches another value while the walk runs gets a walk of its own', () => {
  const inner = { inner: 'x'.repeat(100), list: [1, 2, 3] }
  let innerBytes
  const outer = { before: 'b', get g () { innerBytes = encodeEnvelope(inner); return 'g' }, after: [0.5] }
  assert.deepEqual(roundtrip(outer), { before: 'b', g: 'g', after: [0.5] })
  assert.deepEqual(decodeEnvelope(innerBytes).value, inner)
})

test('holes are refused with their index; explicit undefined is nil', async () => {
  await refused([1, , 3], /index 1 of 3 is a hole/) // eslint-disable-line no-sparse-arrays
  const long = Array(40).fill(0)
  delete long[30]
  await refused(long, /index 30 of 40/)
  await refused({ a: { b: [[, 1]] } }, /index 0 of 2/) // eslint-disable-line no-sparse-arrays
  assert.deepEqual(roundtrip([undefined, 1, undefined]), [null, 1, null])
  assert.deepEqual(roundtrip({ u: undefined }), { u: null })
  await refused(undefined, /undefined cannot be cached/)
})

test('toJSON is not called: the value is read as it is', async () => {
  await refused({ a: 1, toJSON () { return 'x' } }, /a function cannot be cached/)
  await refused(new Date(0), /only plain objects/)
  // A toJSON that is not a function is just a key.
  assert.deepEqual(roundtrip({ toJSON: 'plain' }), { toJSON: 'plain' })
})

test('lone surrogates are refused, naming the key or string; pairs are fine', async () => {
  await refused({ 'key\ud800': 1 }, /object key 'key\ufffd'.*lone surrogates/)
  await refused({ k: 'value\udfff' }, /string 'value\ufffd'.*lone surrogates/)
  await refused(['x'.repeat(60) + '\ud83d'], /lone surrogates/) // a long string, the native UTF-8 path
  await refused('\udc00\ud800', /lone surrogates/) // reversed pair
  const pairs = { '😀 key': '😀 value', long: '😀'.repeat(40) + 'é'.repeat(40) }
  assert.deepEqual(roundtrip(pairs), pairs)
})

test('strings of every length and kind go in as UTF-8', () => {
  for (const n of [0, 1, 47, 48, 49, 1000, 70_000]) {
    for (const s of ['a'.repeat(n), 'é'.repeat(n), 'a'.repeat(n) + '日']) {
      assert.equal(roundtrip(s), s, `${n}`)
      assert.equal(roundtrip({ [s]: s })[s], s, `${n} as a key`)
    }
  }
  // The same bytes as canonical MessagePack (FORMAT.md §2).
  assert.equal(payload('héllo'), 'a668c3a96c6c6f')
  assert.equal(payload('a'.repeat(32)), 'd920' + '61'.repeat(32))
})

test('Buffer and Uint8Array views are their own bytes, at any offset', async () => {
  const backing = Buffer.from('hello world')
  const tail = backing.subarray(6)
  assert.equal(payload(tail), 'c405' + Buffer.from('world').toString('hex'))
  assert.ok(roundtrip({ b: tail }).b.equals(Buffer.from('world')))
  const view = new Uint8Array(new Uint8Array([9, 8, 7, 6, 5]).buffer, 1, 3)
  assert.ok(roundtrip([view])[0].equals(Buffer.from([8, 7, 6])))
  assert.ok(roundtrip(new Uint8Array(0)).equals(Buffer.alloc(0)))
  const big = Buffer.alloc(200_000, 7)
  assert.ok(roundtrip({ big }).big.equals(big))
  await refused(new Float64Array(2), /only Buffer and Uint8Array/)
  await refused(new Uint8ClampedArray(2), /only Buffer and Uint8Array/)
  await refused(new DataView(new ArrayBuffer(2)), /only plain objects/)
})

test('-0 and NaN follow the number rule in every position', () => {
  assert.equal(payload(-0), '00')
  assert.equal(payload([-0, NaN]), '9200cb7ff8000000000000')
  assert.equal(payload({ z: -0 }), '81a17a00')
  assert.ok(same(roundtrip({ n: NaN, i: -Infinity }), { n: NaN, i: -Infinity }))
  assert.equal(payload(Number.MAX_SAFE_INTEGER), 'cf001fffffffffffff')
  assert.equal(payload(-Number.MAX_SAFE_INTEGER), 'd3ffe0000000000001')
  assert.equal(payload(2 ** 53), 'cb4340000000000000')
})

test('bigints at the limits of the model', async () => {
  assert.equal(payload(2n ** 64n - 1n), 'cfffffffffffffffff')
  assert.equal(payload(-(2n ** 63n)), 'd38000000000000000')
  assert.equal(payload(0n), '00')
  assert.equal(payload(-1n), 'ff')
  assert.equal(roundtrip({ b: 2n ** 63n }).b, 2n ** 63n)
  await refused(2n ** 64n, /wider than 64 bits/)
  await refused([-(2n ** 64n)], /wider than 64 bits/)
  await refused({ b: -(2n ** 63n) - 1n }, /below -2\^63/)
  await refused(-(2n ** 64n) + 1n, /below -2\^63/)
})

test('the value after a large one is read from the start of the reused buffer', () => {
  const large = Array.from({ length: 20_000 }, (_, i) => ({ i, s: `s${i}` }))
  assert.deepEqual(roundtrip(large), large)
  assert.deepEqual(roundtrip({ small: true }), { small: true })
  assert.equal(payload([1]), '9101')
})

test('numbers in a row are one run; each item is read once, the number rule holds', async () => {
  const mixed = [1, 2.5, 'x', -0, NaN, 2 ** 53, [3, 4], 5]
  assert.equal(
    payload(mixed),
    '98' + '01' + 'cb4004000000000000' + 'a178' + '00' + 'cb7ff8000000000000' + 'cb4340000000000000' + '920304' + '05',
  )
  assert.ok(same(roundtrip(mixed), [1, 2.5, 'x', 0, NaN, 2 ** 53, [3, 4], 5]))
  await refused([1, 2, , 4], /index 2 of 4 is a hole/) // eslint-disable-line no-sparse-arrays
  await refused([1, 2, () => 3], /a function cannot be cached/)
  const reads = []
  const counted = new Proxy([1, 2, 'three', 4], { get: (t, k) => { if (k !== 'length') reads.push(k); return t[k] } })
  assert.deepEqual(roundtrip(counted), [1, 2, 'three', 4])
  assert.deepEqual(reads, ['0', '1', '2', '3'])
  const long = Array.from({ length: 5000 }, (_, i) => (i % 7 === 0 ? `s${i}` : i * 0.5))
  assert.deepEqual(roundtrip(long), long.map((x) => x))
})

test('a large value is read on a helper thread while the walk writes it: same values, refusals and errors', async () => {
  const records = (n) => {
    const o = {}
    for (let i = 0; i < n; i++) o[`field_${i}`] = { id: i, name: `user ${i}`, score: i * 1.5 + 0.25, tags: ['a', 'b'], ok: true }
    return o
  }
  const late = (n, key, get) => Object.defineProperty(records(n), key, { get, enumerable: true })
  const { standalone } = await redis()
  for (const cache of [new Cache(), await Cache.connect(standalone, { namespace: uniqueNamespace('ahead') })]) {
    // Growing sizes: each walk outgrows the walk's buffer while the helper reads it.
    for (const n of [1500, 6000, 24000]) {
      const value = records(n)
      await cache.set('big', value)
      const back = await cache.get('big')
      assert.deepEqual(back, value)
      assert.deepEqual(Object.keys(back), Object.keys(value))
    }
    const list = Array.from({ length: 30000 }, (_, i) => (i % 3 ? i * 0.25 : { i, s: `v${i}` }))
    await cache.set('list', list)
    assert.deepEqual(await cache.get('list'), list)
    // Found late in the value: refused, or thrown, as without a helper; the next set works.
    const fn = late(3000, 'last', () => () => 1)
    await assert.rejects(cache.set('k', fn), (err) => err.code === 'ECODEC' && /a function cannot be cached/.test(err.message))
    assert.throws(() => encodeEnvelope(fn), /a function cannot be cached/)
    const boom = new Error('late')
    await assert.rejects(async () => cache.set('k', late(3000, 'bad', () => { throw boom })), (err) => err === boom)
    // A getter that stores another large value while this one is walked: each its own.
    let inner
    const outer = late(3000, 'nested', () => { inner = cache.set('inner', records(2000)); return 'n' })
    await cache.set('outer', outer)
    await inner
    assert.equal((await cache.get('outer')).nested, 'n')
    assert.deepEqual(await cache.get('inner'), records(2000))
    // A root getter that deletes a later key while the value is read ahead: the value is
    // stored as walked (without it), as without a helper.
    const wide = () => {
      const o = {}
      for (let i = 0; i < 100; i++) o[`k${i}`] = 'x'.repeat(2000) + i
      return Object.defineProperty(o, 'k50', { get () { delete o.k60; return 'g' }, enumerable: true })
    }
    await cache.set('wide', wide())
    const stored = await cache.get('wide')
    assert.deepEqual(stored, roundtrip(wide()))
    assert.equal(Object.keys(stored).length, 99)
    assert.equal(stored.k50, 'g')
    // Items nested to the limit, read on the helper's stack.
    const deep = () => {
      let v = 1
      for (let i = 0; i < 255; i++) v = [v]
      return v
    }
    const nested = Array.from({ length: 200 }, deep)
    await cache.set('deep', nested)
    assert.deepEqual(await cache.get('deep'), nested)
    await cache.set('small', { a: 1 })
    assert.deepEqual(await cache.get('small'), { a: 1 })
    cache.close?.()
  }
})
