// Driven by the wasmtime host's tests (bindings-wasm/host): this package, with a RESP
// transport of its own, reads the values the component wrote and writes values for the
// component to read. Input on stdin, as JSON:
//   { "endpoint": "host:port", "namespace": "...", "read": [key, ...], "write": [[key, typed], ...] }
// Output on stdout: { "read": { key: typed | null } }, values in the vectors' typed notation.
import { readFileSync } from 'node:fs'
import { pc, typed } from './helpers.mjs'
import { Resp } from './resp.mjs'

/** A JS value in the typed notation of tests/vectors/README.md (FORMAT.md §2, Node column). */
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

const job = JSON.parse(readFileSync(0, 'utf8'))
const redisKey = (key) => pc.redisKey('pc', job.namespace, 200, key)
const conn = await Resp.connect(job.endpoint)
try {
  const read = {}
  for (const key of job.read) {
    const bytes = await conn.command('GET', redisKey(key))
    read[key] = bytes === null ? null : toTyped(pc.decodeEnvelope(bytes).value)
  }
  for (const [key, value] of job.write) {
    const bytes = pc.encodeEnvelope(typed(value), { createdAt: Date.now() })
    await conn.command('SET', redisKey(key), bytes, 'PX', '60000')
  }
  process.stdout.write(JSON.stringify({ read }) + '\n')
} finally {
  conn.close()
}
