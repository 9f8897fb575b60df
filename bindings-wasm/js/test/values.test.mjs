// The JS <-> value mapping of FORMAT.md §2 (Node column) and the error codes.
import test from 'node:test'
import assert from 'node:assert/strict'
import { pc, same } from './helpers.mjs'

const roundtrip = (value) => pc.decodeEnvelope(pc.encodeEnvelope(value)).value

test('values keep their kind through an envelope', () => {
  const value = {
    id: 42,
    score: 1.5,
    big: 18446744073709551615n,
    small: -9223372036854775808n,
    safe: 9007199254740991,
    name: 'Ada',
    bytes: new Uint8Array([0, 1, 255]),
    buffer: Buffer.from('hi'),
    list: [1, 'two', null, undefined],
    nested: { deeper: { yes: true } },
    nothing: null,
  }
  const got = roundtrip(value)
  assert.ok(
    same(got, { ...value, buffer: new Uint8Array([104, 105]), list: [1, 'two', null, null] }),
    JSON.stringify(got, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)),
  )
  assert.equal(typeof got.big, 'bigint')
  assert.equal(typeof got.safe, 'number')
})

test('an integral number is an integer, so 1.0 and -0 are written as integers', () => {
  const bytes = pc.encodeEnvelope(1.0, { createdAt: 0 })
  assert.equal(bytes[bytes.length - 1], 0x01, 'positive fixint 1')
  assert.ok(Object.is(roundtrip(-0), 0))
  assert.ok(Object.is(roundtrip(0.5), 0.5))
  assert.ok(Number.isNaN(roundtrip(NaN)))
})

test('maps keep insertion order; integer-like keys come first, as JS objects list them', () => {
  const value = { zeta: 1, alpha: { z: true, m: null, a: [{ y: 1, x: 2.5 }] }, é: 'e', B: 'b' }
  for (const codec of ['msgpack', 'json']) {
    const back = pc.decodeEnvelope(pc.encodeEnvelope(value, { codec })).value
    assert.deepEqual(Object.keys(back), ['zeta', 'alpha', 'é', 'B'])
    assert.deepEqual(Object.keys(back.alpha), ['z', 'm', 'a'])
    assert.deepEqual(Object.keys(back.alpha.a[0]), ['y', 'x'])
  }
  const mixed = { b: 1, 10: 'ten', a: 2, 2: 'two', '-1': 'minus', c: 3 }
  const back = pc.decodeEnvelope(pc.encodeEnvelope(mixed)).value
  assert.deepEqual(Object.keys(back), ['2', '10', 'b', 'a', '-1', 'c'])
})

test('a map key named __proto__ stays data', () => {
  const value = JSON.parse('{"__proto__": 1, "a": 2}')
  const got = roundtrip(value)
  assert.deepEqual(Object.keys(got).sort(), ['__proto__', 'a'])
  assert.equal(Object.getPrototypeOf(got), Object.prototype)
})

test('values that cannot be cached are TypeErrors with code ECODEC', () => {
  const cyclic = {}
  cyclic.self = cyclic
  for (const bad of [undefined, () => 1, Symbol('s'), new Date(0), new Map(), cyclic, 2n ** 64n, -(2n ** 63n) - 1n]) {
    assert.throws(() => pc.encodeEnvelope(bad), (err) => err instanceof TypeError && err.code === 'ECODEC', String(typeof bad))
  }
})

test('contract errors carry the ErrorKind code', () => {
  assert.throws(() => pc.decodeEnvelope(Buffer.from('plain text')), (err) => err.code === 'ECODEC')
  assert.throws(() => pc.redisKey('pc', 'default', 200, ''), (err) => err.code === 'EKEY')
  assert.throws(() => pc.redisKey('p{', 'default', 200, 'k'), (err) => err.code === 'ECONFIG')
  assert.throws(() => pc.encodeEnvelope(1, { codec: 'yaml' }), (err) => err.code === 'ECONFIG')
  assert.throws(() => pc.encodeEnvelope(new Uint8Array(1), { codec: 'json' }), (err) => err.code === 'ECODEC')
  assert.throws(() => new pc.Ring([]), (err) => err.code === 'ECONFIG')
  assert.throws(() => pc.renderKey('user:{', []), (err) => err.code === 'ECONFIG')
  assert.throws(() => pc.renderKey('user:{0}', []), (err) => err.code === 'EKEY')
})

test('TTL decisions match core: jitter only shortens, freshness follows the header', () => {
  assert.equal(pc.jitteredTtl(100, 0, 0.9), 100)
  assert.equal(pc.jitteredTtl(100, 0.5, 0.5), 75)
  assert.equal(pc.jitteredTtl(0.001, 1, 0.99), 0.001)
  for (let i = 0; i < 100; i++) {
    const ttl = pc.jitteredTtl(60, 0.2)
    assert.ok(ttl > 47.9 && ttl <= 60, `${ttl}`)
  }
  assert.throws(() => pc.jitteredTtl(-1, 0), { code: 'ECONFIG' })
  const windowed = pc.encodeEnvelope('v', { freshUntil: 1_000 })
  assert.equal(pc.isFresh(windowed, 999), true)
  assert.equal(pc.isFresh(windowed, 1_000), false)
  assert.equal(pc.isFresh(pc.encodeEnvelope('v'), Date.now()), true)
  assert.throws(() => pc.isFresh(new Uint8Array([1, 2, 3]), 0), { code: 'ECODEC' })
})
