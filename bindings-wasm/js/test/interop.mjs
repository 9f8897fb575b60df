// Driven by the wasmtime host's tests (bindings-wasm/host): this package, with a RESP
// transport of its own, reads the values the component wrote and writes values for the
// component to read. Input on stdin, as JSON:
//   { "endpoint": "host:port", "namespace": "...", "read": [key, ...], "write": [[key, typed], ...] }
// Output on stdout: { "read": { key: typed | null } }, values in the vectors' typed notation.
import { readFileSync } from 'node:fs'
import { pc, toTyped, typed } from './helpers.mjs'
import { Resp } from './resp.mjs'

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
