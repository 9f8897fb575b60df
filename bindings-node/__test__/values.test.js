'use strict'
// FORMAT.md §2, the Node column: how JS values map to the envelope and back.
const test = require('node:test')
const assert = require('node:assert/strict')
const { Cache, encodeEnvelope, decodeEnvelope } = require('..')
const { same } = require('./helpers')

const roundtrip = (value) => decodeEnvelope(encodeEnvelope(value)).value

test('numbers: integral safe numbers are integers, the rest floats', () => {
  // Payload bytes after the 24-byte header: canonical MessagePack.
  const payload = (v) => encodeEnvelope(v).subarray(24).toString('hex')
  assert.equal(payload(1), '01')
  assert.equal(payload(1.0), '01', '1.0 from Node is the integer 1')
  assert.equal(payload(-0), '00')
  assert.equal(payload(1.5), 'cb3ff8000000000000')
  assert.equal(payload(2 ** 53), 'cb4340000000000000', 'beyond MAX_SAFE_INTEGER a number stays a float')
  assert.equal(payload(NaN), 'cb7ff8000000000000')
  assert.equal(payload(-1), 'ff')
  assert.ok(same(roundtrip(Infinity), Infinity))
  assert.ok(same(roundtrip(NaN), NaN))
})

test('bigint: 64-bit integers, read back as bigint beyond 2^53', () => {
  assert.equal(roundtrip(5n), 5, 'a small bigint is an integer, read back as a number')
  assert.equal(roundtrip(2n ** 64n - 1n), 2n ** 64n - 1n)
  assert.equal(roundtrip(-(2n ** 63n)), -(2n ** 63n))
  assert.equal(roundtrip(2n ** 53n), 2n ** 53n)
  assert.equal(roundtrip(Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER)
  for (const wide of [2n ** 64n, -(2n ** 63n) - 1n, 2n ** 100n]) {
    assert.throws(() => encodeEnvelope(wide), (err) => err instanceof TypeError && err.code === 'ECODEC')
  }
})

test('bytes, strings, arrays, plain objects', () => {
  const bytes = roundtrip(new Uint8Array([0, 1, 255]))
  assert.ok(Buffer.isBuffer(bytes) && bytes.equals(Buffer.from([0, 1, 255])))
  assert.ok(roundtrip(Buffer.alloc(0)).equals(Buffer.alloc(0)))
  assert.equal(roundtrip('日本語 🦀'), '日本語 🦀')
  assert.deepEqual(roundtrip([1, [undefined, null], { a: undefined }]), [1, [null, null], { a: null }])
  assert.deepEqual(roundtrip(Object.assign(Object.create(null), { z: 1, a: 2 })), { a: 2, z: 1 })
})

test('strings inside objects and arrays come back exactly, escaped or not, ASCII or not', () => {
  // A get makes objects with JSON.parse of core's text (one-byte when it is ASCII): every
  // character JSON escapes, at every position of short and long strings, and text that is
  // not ASCII next to text that is.
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
  const strings = ['', 'é', 'ÿ', '\u0100', '日本語', '🦀', '\u2028\u2029', '\u007f\u0080']
  for (let n = 0; n <= 40; n++) {
    const plain = alphabet.slice(0, n)
    strings.push(plain)
    for (let at = 0; at < n; at++) {
      for (const special of ['"', '\\', '\u0000', '\u0001', '\u001f', '\n', '\t', '/', 'é']) {
        strings.push(plain.slice(0, at) + special + plain.slice(at + 1))
      }
    }
  }
  const ascii = strings.filter((s) => /^[\x00-\x7f]*$/.test(s))
  for (const list of [ascii, strings]) {
    const value = { list, byKey: Object.fromEntries(list.map((s, i) => [`${s}#${i}`, s])) }
    assert.deepEqual(roundtrip(value), value)
  }
})

test('maps keep insertion order; integer-like keys come first, as JS objects list them', () => {
  const value = { zeta: 1, alpha: { z: true, m: null, a: [{ y: 1, x: 2.5 }] }, é: 'e', B: 'b' }
  const back = roundtrip(value)
  assert.deepEqual(Object.keys(back), ['zeta', 'alpha', 'é', 'B'])
  assert.deepEqual(Object.keys(back.alpha), ['z', 'm', 'a'])
  assert.deepEqual(Object.keys(back.alpha.a[0]), ['y', 'x'])
  // Two insertion orders, two payloads (the order is part of the value).
  assert.ok(!encodeEnvelope({ b: 1, a: 2 }).equals(encodeEnvelope({ a: 2, b: 1 })))
  // docs/FORMAT.md §2: a JS object lists integer-like keys first, ascending; every other
  // key keeps its place, and the payload follows what the object lists.
  const mixed = { b: 1, 10: 'ten', a: 2, 2: 'two', '-1': 'minus', '01': 'zero-one', c: 3 }
  assert.deepEqual(Object.keys(mixed), ['2', '10', 'b', 'a', '-1', '01', 'c'])
  assert.deepEqual(Object.keys(roundtrip(mixed)), ['2', '10', 'b', 'a', '-1', '01', 'c'])
})

test('a "__proto__" key comes back as an own property, not a prototype', () => {
  const value = JSON.parse('{"__proto__": {"polluted": true}, "x": 1}')
  const back = roundtrip(value)
  assert.equal(Object.getPrototypeOf(back), Object.prototype)
  assert.deepEqual(Object.keys(back).sort(), ['__proto__', 'x'])
  assert.equal(back.polluted, undefined)
  assert.equal({}.polluted, undefined)
})

test('objects that share their keys read the same before and after their shape is compiled', () => {
  // A read's plan (core's codec::js::plan): objects of one key set are made by a
  // constructor compiled from the keys once the set has been met a few times, key by key
  // before. Read each value five times so both ways are checked, with keys a literal must
  // quote, integer-like keys, a "__proto__" key (never a constructor) and maps over the
  // shape size.
  const odd = { '': 0, '"': 1, '\\': 2, '\u2028': 3, constructor: 4, toString: 5, 'é日': 6, 7: 'seven' }
  const proto = JSON.parse('{"__proto__": {"polluted": true}, "y": 2}')
  const wide = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i]))
  const value = {
    records: Array.from({ length: 20 }, (_, i) => ({ id: i, name: `user ${i}`, score: i + 0.5, tags: ['a'], ok: i % 2 === 0 })),
    odd: [odd, { ...odd }, { ...odd }],
    proto: [proto, proto, proto],
    wide: [wide, wide, wide],
    big: [2 ** 40, -(2 ** 53) + 1, -(2 ** 31), NaN, 0.1],
  }
  for (let round = 0; round < 5; round++) {
    const back = roundtrip(value)
    assert.deepEqual(back, value)
    assert.deepEqual(Object.keys(back.odd[2]), Object.keys(odd))
    assert.deepEqual(Object.keys(back.records[7]), ['id', 'name', 'score', 'tags', 'ok'])
    assert.equal(Object.getPrototypeOf(back.records[3]), Object.prototype)
    assert.equal(Object.getPrototypeOf(back.proto[2]), Object.prototype)
    assert.deepEqual(Object.keys(back.proto[2]), ['__proto__', 'y'])
    assert.equal(back.proto[2].polluted, undefined)
  }
  assert.equal({}.polluted, undefined)
})

test('keys Object.prototype has are defined as own properties, as JSON.parse does', () => {
  // A setter someone put on Object.prototype never runs for a value read from Redis, on
  // every way a get makes objects: by shape (before and after compiling), key by key (a map
  // over the shape size) and the exact path (bytes inside).
  let calls = 0
  Object.defineProperty(Object.prototype, 'evil', { set () { calls++ }, configurable: true })
  try {
    const wide = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i]))
    for (const value of [{ evil: 1, toString: 2 }, { ...wide, evil: 3 }, { evil: 4, b: Buffer.from([1]) }]) {
      const bytes = encodeEnvelope(value)
      for (let round = 0; round < 4; round++) {
        const back = decodeEnvelope(bytes).value
        assert.ok(Object.prototype.hasOwnProperty.call(back, 'evil'), 'an own property')
        assert.equal(Object.getOwnPropertyDescriptor(back, 'evil').value, value.evil)
      }
    }
    assert.equal(calls, 0, 'the setter never ran')
  } finally {
    delete Object.prototype.evil
  }
  // With Object.prototype frozen (hardened programs), assignment to "toString" would
  // throw; definition does not.
  const script = `
    const { encodeEnvelope, decodeEnvelope } = require(${JSON.stringify(require.resolve('..'))})
    const wide = Object.fromEntries(Array.from({ length: 40 }, (_, i) => ['k' + i, i]))
    const values = [{ toString: 1, a: 2 }, { ...wide, constructor: 3 }, { valueOf: 4, b: Buffer.from([1]) }]
    const bytes = values.map((v) => encodeEnvelope(v))
    Object.freeze(Object.prototype)
    for (let round = 0; round < 4; round++) {
      for (const b of bytes) decodeEnvelope(b)
    }
    const back = decodeEnvelope(bytes[0]).value
    process.stdout.write(String(back.toString) + ',' + String(decodeEnvelope(bytes[1]).value.constructor))`
  const out = require('node:child_process').execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })
  assert.equal(out, '1,3')
})

test('a repeated key keeps its first place and takes its last value', () => {
  // {"b": 1, "a": 2, "b": 3}: core's encoder never repeats a key, so it is made by hand.
  const envelope = encodeEnvelope({ b: 1, a: 2, c: 3 })
  envelope[envelope.lastIndexOf(0x63)] = 0x62
  for (let round = 0; round < 5; round++) {
    const back = decodeEnvelope(envelope).value
    assert.deepEqual(Object.keys(back), ['b', 'a'])
    assert.deepEqual(back, { b: 3, a: 2 })
  }
})

test('reads on either side of the plan loop\'s scratch size read the same', async () => {
  // A plan of up to 64 KiB is copied into the loop's one scratch Buffer, a larger one into
  // a Buffer of its own: records with floats and strings from well under to well over that,
  // read alone and mixed in one getMany (scratch, own buffer, scratch again).
  const records = (n) => Array.from({ length: n }, (_, i) => ({ id: i, score: i + 0.25, name: `user ${i}`, tags: ['a', 'é'] }))
  // (48 bytes of plan per record here: 1,364 records fit the 64 KiB, 1,365 do not.)
  const values = [records(1), records(1000), records(1364), records(1365), records(5000), records(2)]
  for (const value of values) {
    for (let round = 0; round < 3; round++) assert.deepEqual(roundtrip(value), value)
  }
  const cache = new Cache({ compression: 'none' })
  await cache.setMany(values.map((value, i) => [`k${i}`, value]))
  const back = await cache.getMany(values.map((_, i) => `k${i}`))
  assert.deepEqual(back, values)
  // A tiny read right after one that filled the scratch reads only its own bytes.
  for (const [big, tiny] of [[2, 0], [2, 5], [3, 0]]) {
    assert.deepEqual(await cache.get(`k${big}`), values[big])
    assert.deepEqual(await cache.get(`k${tiny}`), values[tiny])
  }
  // Nested maps of 128 keys or more, read through the scratch and around it, and under a
  // frozen Object.prototype (hardened programs) in a process of its own.
  const wide = (n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`w${i}`, i % 3 === 0 ? `s${i}` : i + 0.5]))
  const nested = { inner: [wide(130), { deeper: wide(300) }], after: wide(2) }
  for (let round = 0; round < 3; round++) assert.deepEqual(roundtrip(nested), nested)
  const script = `
    const { encodeEnvelope, decodeEnvelope } = require(${JSON.stringify(require.resolve('..'))})
    const wide = Object.fromEntries(Array.from({ length: 200 }, (_, i) => ['k' + i, i]))
    const bytes = encodeEnvelope({ ...wide, toString: 1, constructor: 2 })
    Object.freeze(Object.prototype)
    const back = decodeEnvelope(bytes).value
    process.stdout.write(String(back.toString) + ',' + String(back.constructor) + ',' + Object.keys(back).length)`
  const out = require('node:child_process').execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })
  assert.equal(out, '1,2,202')
})

test('maps of 128 keys or more read as JSON.parse makes them', () => {
  // Made on a null prototype, then given Object.prototype (plan.rs, DICTIONARY): the keys
  // keep their order (integer-like keys first, as in any object), "__proto__" and keys
  // Object.prototype has are own properties, a setter there never runs, and a repeated
  // key keeps its first place and takes its last value.
  let calls = 0
  Object.defineProperty(Object.prototype, 'evil', { set () { calls++ }, configurable: true })
  try {
    for (const n of [127, 128, 1000]) {
      const text = '{"__proto__": {"polluted": true}, "zeta": 1, "7": "seven", "toString": 2, "evil": 3, ' +
        Array.from({ length: n - 5 }, (_, i) => `"k${n - i}": ${i}`).join(', ') + '}'
      const value = JSON.parse(text)
      assert.equal(Object.keys(value).length, n)
      for (let round = 0; round < 3; round++) {
        const back = roundtrip(value)
        assert.deepEqual(Object.keys(back), Object.keys(value))
        assert.equal(Object.getPrototypeOf(back), Object.prototype)
        assert.deepEqual(Object.getOwnPropertyDescriptor(back, '__proto__'),
          { value: { polluted: true }, writable: true, enumerable: true, configurable: true })
        assert.equal(back.polluted, undefined)
        assert.equal(back.toString, 2)
        assert.equal(back.evil, 3)
        assert.equal(back.k6, n - 6)
        assert.ok(back instanceof Object)
      }
    }
    assert.equal(calls, 0, 'the setter never ran')
  } finally {
    delete Object.prototype.evil
  }
  // {"b": 1, "a": 2, …, "b": 3} with 200 keys: core's encoder never repeats a key, so the
  // second "b" is made by hand (the last key renamed).
  const wide = Object.fromEntries([['b', 1], ...Array.from({ length: 198 }, (_, i) => [`k${i}`, i]), ['c', 3]])
  const envelope = encodeEnvelope(wide, { compression: 'none' })
  envelope[envelope.lastIndexOf(0x63)] = 0x62
  const back = decodeEnvelope(envelope).value
  assert.equal(Object.keys(back).length, 199)
  assert.equal(Object.keys(back)[0], 'b')
  assert.equal(back.b, 3)
})

test('more key sets than the constructors kept, and no code generation from strings', () => {
  // 5,000 distinct key sets (the loop keeps 1,024 shapes), read three times.
  const many = Array.from({ length: 5000 }, (_, i) => ({ [`key${i}`]: i, x: 1 }))
  for (let round = 0; round < 3; round++) assert.deepEqual(roundtrip(many), many)
  // Where code cannot be generated from strings, objects are made key by key.
  const script = `
    const { encodeEnvelope, decodeEnvelope } = require(${JSON.stringify(require.resolve('..'))})
    const value = Array.from({ length: 50 }, (_, i) => ({ id: i, name: 'n' + i }))
    for (let i = 0; i < 5; i++) {
      const back = decodeEnvelope(encodeEnvelope(value)).value
      if (JSON.stringify(back) !== JSON.stringify(value)) throw new Error('differs')
    }
    process.stdout.write('same')`
  const out = require('node:child_process').execFileSync(process.execPath,
    ['--disallow-code-generation-from-strings', '-e', script], { encoding: 'utf8' })
  assert.equal(out, 'same')
})

test('unsupported values are a TypeError with code ECODEC', async () => {
  const cyclic = { a: [] }
  cyclic.a.push(cyclic)
  let deep = []
  for (let i = 0; i < 600; i++) deep = [deep]
  class User { constructor() { this.id = 1 } }
  const bad = [() => 1, Symbol('s'), undefined, cyclic, deep, new Date(), new Map(), new User(), new Float32Array(2), 2n ** 64n]
  const cache = new Cache()
  for (const value of bad) {
    assert.throws(() => encodeEnvelope(value), (err) => err instanceof TypeError && err.code === 'ECODEC', String(value))
    await assert.rejects(cache.set('k', value), (err) => err instanceof TypeError && err.code === 'ECODEC')
  }
  assert.deepEqual(cache.metrics().sets, 0)
})

test('JSON codec: what JSON cannot hold is ECODEC; bytes codec stores bytes only', async () => {
  const json = new Cache({ codec: 'json' })
  await json.set('ok', { a: [1, 2.5, 'x'] })
  assert.deepEqual(await json.get('ok'), { a: [1, 2.5, 'x'] })
  await assert.rejects(json.set('nan', NaN), (err) => err.code === 'ECODEC')
  const bytes = new Cache({ codec: 'bytes' })
  await bytes.set('b', Buffer.from('raw'))
  assert.ok((await bytes.get('b')).equals(Buffer.from('raw')))
  await assert.rejects(bytes.set('s', 'text'), (err) => err.code === 'ECODEC')
})
