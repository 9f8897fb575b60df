'use strict'
// The read path without a Value tree (docs/node.md, "Reading values"): a read's bytes are
// transcoded on the runtime thread into what V8 makes objects from (JSON text for
// JSON.parse, or one Float64Array for an array of numbers), and what JSON cannot carry
// exactly is decoded on the JS thread one value at a time. Every path must give the value
// that was stored, count each read once, and turn bad bytes into a counted miss.
const test = require('node:test')
const assert = require('node:assert/strict')
const { Cache, encodeEnvelope } = require('..')
const { redis, same, uniqueNamespace } = require('./helpers')

const records = (n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [
  `field_${i}`, { id: i, name: `user ${i}`, score: i * 1.5 + 0.25, tags: ['a', 'b'], ok: true },
]))
const floats = (n) => Array.from({ length: n }, (_, i) => i * 0.3183098861837907 + 0.1)

/** The counters a test reads: hits, misses, decode errors. */
const counts = (cache) => {
  const m = cache.metrics()
  return { hits: m.hits, misses: m.misses, decodeErrors: m.decodeErrors }
}

for (const topology of ['memory', 'standalone']) {
  test(`large values round-trip with their key order (${topology})`, async () => {
    const url = topology === 'memory' ? 'memory://' : (await redis()).standalone
    const cache = await Cache.connect(url, { namespace: uniqueNamespace('codec-large') })
    // About 1 MB of JSON each; LZ4 compresses them in Redis (the default from 1 KB).
    const big = { last: 'first key', ...records(10_000), 7: 'an integer-like key', z: [1.5, 'x'] }
    const many = floats(50_000)
    await cache.set('records', big)
    await cache.set('floats', many)
    const back = await cache.get('records')
    assert.deepEqual(back, big)
    assert.deepEqual(Object.keys(back), Object.keys(big), 'keys in insertion order (integer-like first)')
    assert.equal(Object.keys(back)[1], 'last')
    assert.deepEqual(Object.keys(back.field_9999), ['id', 'name', 'score', 'tags', 'ok'])
    const numbers = await cache.get('floats')
    assert.ok(Array.isArray(numbers))
    assert.deepEqual(numbers, many)
    const [r, f, missing] = await cache.getMany(['records', 'floats', 'nope'])
    assert.deepEqual(r, big)
    assert.deepEqual(f, many)
    assert.equal(missing, undefined)
    assert.deepEqual(counts(cache), { hits: 4, misses: 1, decodeErrors: 0 })
    cache.close()
  })

  test(`lists of numbers of every length come back as arrays (${topology})`, async () => {
    const url = topology === 'memory' ? 'memory://' : (await redis()).standalone
    const cache = await Cache.connect(url, { namespace: uniqueNamespace('codec-numbers') })
    const lists = [[0.5], [1, 2, 3], floats(100), floats(8191), floats(8192), [-0.5, 2 ** 53 - 1, -1e-300]]
    for (const [i, list] of lists.entries()) await cache.set(`n${i}`, list)
    for (const [i, list] of lists.entries()) {
      const back = await cache.get(`n${i}`)
      assert.ok(Array.isArray(back), `list ${i} is an array`)
      assert.deepEqual(back, list, `list ${i}`)
    }
    assert.deepEqual(await cache.getMany(lists.map((_, i) => `n${i}`)), lists)
    cache.close()
  })

  test(`values JSON cannot carry take the exact path (${topology})`, async () => {
    const url = topology === 'memory' ? 'memory://' : (await redis()).standalone
    const cache = await Cache.connect(url, { namespace: uniqueNamespace('codec-exact') })
    const exact = {
      // Integers first in the object (as JS lists them), then the rest in insertion order.
      cases: [
        ['numbers with NaN and infinities', [1, NaN, -Infinity, Infinity, 0.5, 2 ** 53 + 2]],
        ['numbers then a Buffer', [1, 2.5, Buffer.from([0, 255])]],
        ['numbers then a string then NaN', [1, 'x', NaN]],
        ['a map with bytes and a bigint', { z: Buffer.from('raw'), big: 2n ** 60n, neg: -(2n ** 63n), a: 1 }],
        ['NaN deep in a map', { b: { c: [NaN] }, a: 'x' }],
        ['u64 max', 2n ** 64n - 1n],
        ['an empty array', []],
        ['a string', 'plain'],
        ['bytes', Buffer.from([1, 2, 3])],
        ['__proto__ and integer-like keys', JSON.parse('{"b":1,"__proto__":{"polluted":true},"10":"ten","a":[1,{"2":0,"y":1}]}')],
      ],
    }
    for (const [name, value] of exact.cases) await cache.set(name, value)
    for (const [name, value] of exact.cases) {
      const back = await cache.get(name)
      assert.ok(same(back, value), `${name}: ${String(back)}`)
      if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value)) {
        assert.deepEqual(Object.keys(back), Object.keys(value), `${name}: key order`)
        assert.equal(Object.getPrototypeOf(back), Object.getPrototypeOf(value), `${name}: prototype`)
      }
    }
    const back = await cache.getMany(exact.cases.map(([name]) => name))
    exact.cases.forEach(([name, value], i) => assert.ok(same(back[i], value), `getMany ${name}`))
    assert.equal({}.polluted, undefined)
    assert.ok(Number.isNaN((await cache.get('numbers with NaN and infinities'))[1]))
    assert.equal(typeof (await cache.get('a map with bytes and a bigint')).big, 'bigint')
    const n = exact.cases.length
    assert.deepEqual(counts(cache), { hits: 2 * n + 2, misses: 0, decodeErrors: 0 }, 'each read counted once')
    cache.close()
  })
}

test('bad bytes are a counted miss on every read path', async () => {
  const url = (await redis()).standalone
  const namespace = uniqueNamespace('codec-bad')
  const raw = await Cache.connect(url, { namespace, raw: true })
  const writer = await Cache.connect(url, { namespace })
  // Truncated after an item JSON cannot carry: the transcode stops at the bytes (the exact
  // path's business), and the exact path then finds the truncation.
  const bytesFirst = encodeEnvelope([Buffer.from([7]), 'tail'])
  await raw.set('bytes-then-truncated', bytesFirst.subarray(0, bytesFirst.length - 2))
  // Truncated in an array of numbers, and in a map.
  const numbers = encodeEnvelope([0.5, 1.5, 2.5])
  await raw.set('numbers-truncated', numbers.subarray(0, numbers.length - 3))
  const map = encodeEnvelope({ a: 'x', b: 'y' })
  await raw.set('map-truncated', map.subarray(0, map.length - 1))
  await raw.set('foreign', Buffer.from('{"not":"an envelope"}'))
  // Within the writer's limits, beyond the reader's maxValueBytes.
  await writer.set('too-large', floats(10_000))
  await writer.set('too-large-map', records(2_000))
  const reader = await Cache.connect(url, { namespace, maxValueBytes: 64 * 1024 })
  const keys = ['bytes-then-truncated', 'numbers-truncated', 'map-truncated', 'foreign', 'too-large', 'too-large-map']
  for (const key of keys) assert.equal(await reader.get(key), undefined, key)
  assert.deepEqual(await reader.getMany(keys), keys.map(() => undefined))
  assert.deepEqual(counts(reader), { hits: 0, misses: 2 * keys.length, decodeErrors: 2 * keys.length })
  raw.close()
  writer.close()
  reader.close()
})

test('a long array of numbers is written by the same rules as any other value', async () => {
  // From 16 items an array of numbers is copied by one JS call; core still decides each
  // number's form (an integral safe number is an integer, FORMAT.md §2).
  const payload = (v) => encodeEnvelope(v).subarray(24).toString('hex')
  const ints = Array(20).fill(1.0)
  assert.equal(payload(ints), 'dc0014' + '01'.repeat(20))
  const odd = [1, -0, 1.5, NaN, Infinity, 2 ** 53, -(2 ** 31), ...Array(13).fill(7)]
  assert.equal(
    payload(odd),
    'dc0014' + '01' + '00' + 'cb3ff8000000000000' + 'cb7ff8000000000000' + 'cb7ff0000000000000' +
      'cb4340000000000000' + 'd280000000' + '07'.repeat(13),
  )
  // The same bytes as item-by-item reads of a short array give.
  assert.equal(payload(odd.slice(0, 7)), '97' + payload(odd).slice(6, 6 + 2 * 43))
  // Anything but a number, a hole included, takes the item-by-item walk and its rules.
  const holes = Array(20).fill(2)
  delete holes[10]
  assert.throws(() => encodeEnvelope(holes), (err) => err instanceof TypeError && err.code === 'ECODEC' && /sparse/.test(err.message))
  const mixed = [...Array(20).fill(0.5), 'x', 2n ** 60n]
  const cache = new Cache()
  await cache.set('mixed', mixed)
  assert.ok(same(await cache.get('mixed'), mixed))
  await assert.rejects(cache.set('fn', [...Array(20).fill(1), () => 1]), (err) => err instanceof TypeError && err.code === 'ECODEC')
})
