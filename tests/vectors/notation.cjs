'use strict'
// The files every suite reads (tests/vectors/*.json, tests/interop/cases.json) and the
// typed value notation of tests/vectors/README.md, for the JS suites: the Node binding's
// tests, the Node interop agent and the JS edge package's tests (ESM imports this CommonJS
// file). Rust and Python have one counterpart each: tests/src/notation.rs and
// tests/vectors/notation.py.
//
// JS values follow docs/FORMAT.md's Node column: an integer within ±(2^53 − 1) is a number
// and a bigger one a bigint, bytes are a Uint8Array, a map is a plain object.
const fs = require('node:fs')
const path = require('node:path')

const TESTS = path.resolve(__dirname, '..')
const SAFE = BigInt(Number.MAX_SAFE_INTEGER)

const casesOf = (file) => JSON.parse(fs.readFileSync(file, 'utf8')).cases

/** The cases of tests/vectors/<file> (`'envelope.json'` …). */
function vectors(file) {
  return casesOf(path.join(TESTS, 'vectors', file))
}

/** The cases of tests/interop/cases.json (every runtime writes and reads them). */
function interopCases() {
  return casesOf(path.join(TESTS, 'interop', 'cases.json'))
}

/** A value from its typed notation. */
function typed(v) {
  const [tag, inner] = Object.entries(v)[0]
  switch (tag) {
    case 'nil': return null
    case 'bool': return inner
    case 'int': {
      const big = BigInt(inner)
      return big >= -SAFE && big <= SAFE ? Number(big) : big
    }
    case 'float': return { NaN, inf: Infinity, '-inf': -Infinity }[inner] ?? Number(inner)
    case 'str': return inner
    case 'bytes': return Uint8Array.from(Buffer.from(inner, 'hex'))
    case 'array': return inner.map(typed)
    case 'map': return Object.fromEntries(Object.entries(inner).map(([k, x]) => [k, typed(x)]))
    default: throw new Error(`unknown typed tag ${tag}`)
  }
}

/** A JS value in the typed notation (the inverse of `typed` for what JS can say). */
function toTyped(v) {
  if (v === null) return { nil: null }
  if (typeof v === 'boolean') return { bool: v }
  if (typeof v === 'bigint') return { int: String(v) }
  if (typeof v === 'number') {
    if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER && !Object.is(v, -0)) return { int: String(v) }
    if (Number.isNaN(v)) return { float: 'NaN' }
    if (!Number.isFinite(v)) return { float: v > 0 ? 'inf' : '-inf' }
    return { float: Object.is(v, -0) ? '-0.0' : String(v) }
  }
  if (typeof v === 'string') return { str: v }
  if (v instanceof Uint8Array) return { bytes: Buffer.from(v).toString('hex') }
  if (Array.isArray(v)) return { array: v.map(toTyped) }
  return { map: Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toTyped(x)])) }
}

/**
 * Whether JS can say what a typed value says: a JS number that is integral and safe is an
 * integer (FORMAT.md §2), so integral floats (and -0.0) can be checked by decoding only.
 */
function representable(v) {
  const [tag, inner] = Object.entries(v)[0]
  if (tag === 'float') {
    const n = typed(v)
    return !(Number.isInteger(n) && Math.abs(n) <= Number.MAX_SAFE_INTEGER)
  }
  if (tag === 'array') return inner.every(representable)
  if (tag === 'map') return Object.values(inner).every(representable)
  return true
}

/** Deep equality that tells -0 from 0, NaN equal to NaN, bigint from number, bytes by content. */
function same(a, b) {
  if (typeof a === 'number' && typeof b === 'number') return Object.is(a, b)
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.from(a).equals(Buffer.from(b))
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]))
  }
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    // Keys in order: maps keep insertion order (docs/FORMAT.md §2).
    const ka = Object.keys(a)
    const kb = Object.keys(b)
    return same(ka, kb) && ka.every((k) => same(a[k], b[k]))
  }
  return a === b
}

/**
 * The bytes of a hostile.json case: its segments (hex strings and `{repeat, times}` runs)
 * concatenated, checked against its `size`.
 */
function hostileBytes(c) {
  const out = Buffer.concat(
    c.bytes.map((s) => Buffer.from(typeof s === 'string' ? s : s.repeat.repeat(s.times), 'hex')),
  )
  if (out.length !== c.size) throw new Error(`${c.name}: ${out.length} bytes, not ${c.size}`)
  return out
}

module.exports = { vectors, interopCases, typed, toTyped, representable, same, hostileBytes }
