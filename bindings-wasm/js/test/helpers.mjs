// Shared by the suites: loading the package the way an edge runtime does (`--target web`
// output, initialised from the module bytes), the vectors and their typed notation.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const here = path.dirname(fileURLToPath(import.meta.url))
export const root = path.resolve(here, '..', '..', '..')
const pkg = path.resolve(here, '..', 'pkg')

const glue = await import(path.join(pkg, 'polycache.js')).catch((err) => {
  throw new Error(`${pkg} is missing: build it with \`make test-wasm\` (${err.message})`)
})
glue.initSync({ module: readFileSync(path.join(pkg, 'polycache_bg.wasm')) })
export const pc = glue

export function vectors(name) {
  return JSON.parse(readFileSync(path.join(root, 'tests', 'vectors', `${name}.json`), 'utf8')).cases
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER)

/** Typed vector notation (tests/vectors/README.md) -> a JS value, by FORMAT.md's Node column. */
export function typed(v) {
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

/**
 * Whether JS can say what a typed value says: a JS number that is integral and safe is an
 * integer (FORMAT.md §2), so integral floats (and -0.0) can be checked by decoding only.
 */
export function representable(v) {
  const [tag, inner] = Object.entries(v)[0]
  if (tag === 'float') {
    const n = typed(v)
    return !(Number.isInteger(n) && Math.abs(n) <= Number.MAX_SAFE_INTEGER)
  }
  if (tag === 'array') return inner.every(representable)
  if (tag === 'map') return Object.values(inner).every(representable)
  return true
}

/** What a value decodes to in JS: integral floats come back as numbers too. */
export function same(a, b) {
  if (typeof a === 'number' && typeof b === 'number') return Object.is(a, b)
  if (typeof a === 'bigint' || typeof b === 'bigint') return typeof a === typeof b && a === b
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.from(a).equals(Buffer.from(b))
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]))
  }
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a).sort()
    const kb = Object.keys(b).sort()
    return same(ka, kb) && ka.every((k) => same(a[k], b[k]))
  }
  return a === b
}

export function hex(bytes) {
  return Buffer.from(bytes).toString('hex')
}
