// The Node side of the interop matrix: the same commands as agent.py (see its docs),
// one JSON line out. Loads the binding from bindings-node/ (built by `make test-node`).
// The fault suite's `fault` and `load` commands take SPEC.mode as the `io` option
// (`auto` or `async`).
'use strict'
const net = require('node:net')
const path = require('node:path')
const readline = require('node:readline')
const { Cache, NOT_FOUND, Ring, decodeEnvelope } = require(path.join(__dirname, '..', '..', 'bindings-node'))

const { interopCases, same, typed } = require(path.join(__dirname, '..', 'vectors', 'notation.cjs'))

const CASES = interopCases()
const RAW_KEYS = { 'plain:text': Buffer.from('hello from redis-cli'), 'plain:json': Buffer.from('{"a": 1}') }

const cacheFor = (url, ns, c, extra = {}) => Cache.connect(url, {
  namespace: ns,
  ...(c ? { codec: c.codec, compressThreshold: c.compressThreshold } : {}),
  ...extra
})

const jsonSafe = (_, v) => typeof v === 'bigint' ? v.toString() : (v && v.type === 'Buffer' ? Buffer.from(v.data).toString('hex') : v)

const errorText = (err) => `${err.code || err.name}: ${err.message}`.slice(0, 300)
const now = () => Number(process.hrtime.bigint()) / 1e9

// Prints the ready line and resolves on the driver's next line on stdin.
function waitForGo () {
  process.stdout.write(JSON.stringify({ ready: true }) + '\n')
  const lines = readline.createInterface({ input: process.stdin })
  return new Promise((resolve) => lines.once('line', () => { lines.close(); resolve() }))
}

async function timed (cells, api, call) {
  const started = now()
  let err = null
  try { await call() } catch (e) { err = errorText(e) }
  ;(cells[api] ||= []).push([now() - started, err])
}

async function fault (url, ns, spec) {
  const options = { namespace: ns, commandTimeout: spec.timeout, connectTimeout: spec.timeout, io: spec.mode || 'auto' }
  const cache = await Cache.connect(url, options)
  const keys = spec.keys
  await cache.setMany(keys.map((k) => [k, 'before']), { ttl: 600 })
  await waitForGo()
  const cells = {}
  for (let round = 0; round < spec.rounds; round++) {
    await timed(cells, 'get', () => cache.get(keys[0]))
    await timed(cells, 'set', () => cache.set(keys[0], 'after', { ttl: 60 }))
    await timed(cells, 'delete', () => cache.delete(keys[0]))
    await timed(cells, 'ttl', () => cache.ttl(keys[0]))
    await timed(cells, 'get_many', () => cache.getMany(keys))
    await timed(cells, 'set_many', () => cache.setMany(keys.map((k) => [k, 'after']), { ttl: 60 }))
    await timed(cells, 'get_or_load', () => cache.getOrLoad(keys[0], () => 'loaded', { ttl: 60 }))
    await timed(cells, 'open', () => Cache.connect(spec.openUrl || url, options))
  }
  return { cells }
}

async function load (url, ns, spec) {
  const cache = await Cache.connect(url, { namespace: ns, commandTimeout: spec.timeout, connectTimeout: spec.timeout, io: spec.mode || 'auto' })
  for (let start = 0; start < spec.count; start += 500) {
    const batch = []
    for (let i = start; i < Math.min(spec.count, start + 500); i++) batch.push([`k${i}`, i])
    await cache.setMany(batch, { ttl: 600 })
  }
  await waitForGo()
  const t = { ops: 0, errors: 0, wrong: 0, misses: 0, firstError: null, lastError: null, sample: [] }
  const end = now() + spec.seconds
  for (let i = 0; now() < end; i++, t.ops++) {
    const n = i % spec.count
    try {
      let write = i % 10 === 0
      if (!write) {
        const got = await cache.get(`k${n}`)
        if (got === undefined || got === null) { t.misses++; write = true } else if (got !== n) t.wrong++
      }
      if (write) await cache.set(`k${n}`, n, { ttl: 600 })
    } catch (err) {
      const at = Date.now() / 1000
      t.errors++
      t.firstError ??= at
      t.lastError = at
      if (t.sample.length < 3) t.sample.push(errorText(err))
    }
  }
  return t
}

// `failsafe URL NS SPEC`: the fail-safe table (see agent.py). `kind` is `loader` for the
// loader's own rejection (returned unchanged) or ELOADER, `timeout` for ETIMEOUT.
const failureKind = (err) => err.code === 'ETIMEOUT' ? 'timeout' : (err.code === 'ELOADER' || err.message === 'database down') ? 'loader' : (err.code || err.name)

async function failsafe (url, ns, spec) {
  const cache = await Cache.connect(url, {
    namespace: ns,
    commandTimeout: spec.timeout,
    connectTimeout: spec.timeout,
    hardTimeout: spec.hardTimeout,
    maxStale: spec.failSafe ? 600 : 0,
    io: spec.mode || 'auto'
  })
  const first = await cache.getOrLoad(spec.key, () => 'good', { ttl: 600 })
  await waitForGo()
  let loads = 0
  const loader = async () => {
    loads++
    if (spec.fault === 'loader-hangs') {
      await new Promise((resolve) => setTimeout(resolve, spec.hangSeconds * 1000))
      return 'late'
    }
    throw new Error('database down')
  }
  const calls = []
  for (let round = 0; round < spec.rounds; round++) {
    const started = now()
    let value = null
    let kind = null
    let err = null
    try { value = await cache.getOrLoad(spec.key, loader, { ttl: 600 }) } catch (e) { kind = failureKind(e); err = errorText(e) }
    calls.push([now() - started, value, kind, err])
  }
  return { first, calls, loaderCalls: loads }
}

// `fresh-write URL NS SPEC` and `fresh-read URL NS SPEC`: the freshness matrix (see agent.py).
async function freshWrite (url, ns, spec) {
  const cache = await Cache.connect(url, { namespace: ns, freshFor: spec.freshFor })
  await waitForGo()
  for (const key of spec.keys) await cache.getOrLoad(key, () => spec.value, { ttl: 600 })
  return { written: spec.keys.length }
}

const epochMs = () => performance.timeOrigin + performance.now()

// One key of the freshness matrix: `getEntry` where the binding has it, otherwise the
// stored envelope's fresh-until (raw read, contract decode) against this process's clock.
async function freshReader (url, ns, key) {
  const cache = await Cache.connect(url, { namespace: ns })
  const raw = await Cache.connect(url, { namespace: ns, raw: true })
  const via = typeof cache.getEntry === 'function' ? 'getEntry' : 'envelope'
  const read = async () => {
    const before = epochMs()
    if (via === 'getEntry') {
      const entry = await cache.getEntry(key, () => { throw new Error('the reader does not load') })
      return [before, epochMs(), entry.value, entry.stale]
    }
    const envelope = decodeEnvelope(await raw.get(key))
    const freshUntil = envelope.freshUntil ?? 0
    return [before, epochMs(), envelope.value, freshUntil !== 0 && before >= freshUntil]
  }
  return { via, read }
}

async function freshRead (url, ns, spec) {
  const readers = []
  for (const cell of spec.cells) readers.push(await freshReader(url, cell.ns, cell.key))
  await waitForGo()
  const cells = readers.map(() => ({}))
  const deadline = performance.now() + spec.seconds * 1000
  while (performance.now() < deadline && !cells.every((c) => 'firstStale' in c || 'error' in c)) {
    for (let i = 0; i < readers.length; i++) {
      const cell = cells[i]
      if ('firstStale' in cell || 'error' in cell) continue
      try {
        const [before, after, value, stale] = await readers[i].read()
        cell.first ??= stale ? 'stale' : 'fresh'
        cell.value = value
        if (stale) cell.firstStale = after; else cell.lastFresh = before
      } catch (err) {
        cell.error = errorText(err)
      }
    }
  }
  return { via: readers[0]?.via ?? null, cells }
}

// stdin lines, one at a time, for every waiter in turn (agent.py documents the protocol).
let stdinLines = null
const nextLine = () => {
  if (!stdinLines) {
    const queue = []
    const waiting = []
    readline.createInterface({ input: process.stdin }).on('line', (line) => {
      const resolve = waiting.shift()
      if (resolve) resolve(line); else queue.push(line)
    })
    stdinLines = () => queue.length ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiting.push(resolve))
  }
  return stdinLines()
}
const emitLine = (line) => process.stdout.write(JSON.stringify(line) + '\n')

function incr (addr, key) {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))]
  const raw = Buffer.from(key)
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ host, port }, () => {
      sock.write(Buffer.concat([Buffer.from(`*2\r\n$4\r\nINCR\r\n$${raw.length}\r\n`), raw, Buffer.from('\r\n')]))
    })
    sock.once('data', () => { sock.end(); resolve() })
    sock.once('error', reject)
  })
}

// `stampede URL NS SPEC`: see agent.py.
async function stampede (url, ns, spec) {
  const cache = await Cache.connect(url, { namespace: ns, stampedeLock: spec.lock ?? true, lockLease: spec.lease ?? 10, lockTimeout: spec.timeout ?? 10 })
  emitLine({ ready: true })
  await nextLine()
  const watcher = setInterval(() => {
    if (cache.metrics().misses >= 1) { clearInterval(watcher); emitLine({ missed: true }) }
  }, 1)
  const call = async (i) => {
    const key = spec.keys[i % spec.keys.length]
    try {
      return [key, await cache.getOrLoad(key, async () => {
        await incr(spec.counter, spec.counterPrefix + key)
        if (spec.hold) {
          emitLine({ loading: key })
          await nextLine()
        } else {
          await new Promise((resolve) => setTimeout(resolve, spec.delayMs || 0))
        }
        return `${spec.value}:${key}`
      }, { ttl: 600 })]
    } catch (err) {
      return [key, { error: errorText(err) }]
    }
  }
  const results = await Promise.all(Array.from({ length: spec.callers }, (_, i) => call(i)))
  clearInterval(watcher)
  const values = {}
  const errors = []
  for (const [key, got] of results) {
    if (typeof got === 'object') errors.push(got.error)
    else if ((values[key] ??= got) !== got) errors.push(`${key}: ${got} after ${values[key]}`)
  }
  return { values, errors: errors.slice(0, 5), metrics: cache.metrics() }
}

// Wall-clock seconds with sub-millisecond precision (Date.now() has whole milliseconds).
const wallClock = () => (performance.timeOrigin + performance.now()) / 1000

// The reader of the invalidation matrix (see agent.py): a near tier that lives between
// the driver's requests, one JSON line per request line.
async function nearReader (url, ns) {
  const cache = await cacheFor(url, ns, null, { nearCache: 1000 })
  const out = (line) => new Promise((resolve) => process.stdout.write(JSON.stringify(line, jsonSafe) + '\n', resolve))
  await out({ ready: true })
  let key = ''
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const request = JSON.parse(line)
    if (request.op === 'cache') {
      key = request.key
      await out(await nearCache(cache, key))
    } else if (request.op === 'watch') {
      await out({ watching: true })
      await out(await nearWatch(cache, key))
    }
  }
  return { closed: true }
}

// Reads `key` until a read is a near hit (a read overtaken by an invalidation is not stored).
async function nearCache (cache, key) {
  const deadline = performance.now() + 5000
  for (;;) {
    const hits = cache.metrics().nearHits
    const value = await cache.get(key)
    const cached = cache.metrics().nearHits > hits
    if (cached || performance.now() > deadline) return { cached, found: value !== undefined, value: value ?? null }
  }
}

// Polls the near tier (on this thread: the tracking thread applies pushes meanwhile) until
// its entry is gone, then reads the key from Redis.
async function nearWatch (cache, key) {
  const entries = cache.metrics().nearEntries
  const deadline = performance.now() + 10000
  let evictedAt = null
  while (performance.now() < deadline) {
    if (cache.metrics().nearEntries < entries) { evictedAt = wallClock(); break }
  }
  const value = await cache.get(key)
  return { evictedAt, found: value !== undefined, value: value ?? null, flushes: cache.metrics().nearFlushes }
}

async function main ([command, url, ns, arg]) {
  switch (command) {
    case 'stampede': return stampede(url, ns, JSON.parse(arg))
    case 'near-reader': return nearReader(url, ns)
    case 'timed-set':
      await (await cacheFor(url, ns)).set(arg, 'written by node', { ttl: 600 })
      return { returned: wallClock() }
    case 'timed-delete':
      await (await cacheFor(url, ns)).delete(arg)
      return { returned: wallClock() }
    case 'fresh-write': return freshWrite(url, ns, JSON.parse(arg))
    case 'fresh-read': return freshRead(url, ns, JSON.parse(arg))
    case 'failsafe': return failsafe(url, ns, JSON.parse(arg))
    case 'fault': return fault(url, ns, JSON.parse(arg))
    case 'load': return load(url, ns, JSON.parse(arg))
    case 'write':
      for (const c of CASES) await (await cacheFor(url, ns, c)).set(c.key, typed(c.value), { ttl: c.ttl })
      return { written: CASES.length }
    case 'read': {
      const failed = []
      for (const c of CASES) {
        const got = await (await cacheFor(url, ns, c)).get(c.key)
        if (!same(got, typed(c.value))) failed.push({ name: c.name, got: JSON.stringify(got, jsonSafe)?.slice(0, 200) })
      }
      return { passed: CASES.length - failed.length, failed }
    }
    case 'delete': return { deleted: await (await cacheFor(url, ns)).delete(arg) }
    case 'get': return { found: (await (await cacheFor(url, ns)).get(arg)) !== undefined }
    case 'ttl': return { ttl: await (await cacheFor(url, ns)).ttl(arg) }
    case 'place': {
      const cache = await cacheFor(url, ns)
      const keys = Array.from({ length: Number(arg) }, (_, i) => `user:${i}`)
      await cache.setMany(keys.map((k, i) => [k, i]), { ttl: 600 })
      const hosts = url.split('://')[1].split('/')[0].split(',')
      const ring = new Ring(hosts.map((name) => ({ name, weight: 1 })))
      return { nodes: keys.map((k) => ring.nodeFor(cache.redisKey(k))) }
    }
    case 'cached': {
      const cache = await cacheFor(url, ns)
      let loaded = false
      const report = cache.wrap(async (n) => { loaded = true; return { report: n, by: 'node' } }, { key: 'report:{0}', ttl: 600 })
      return { value: await report(Number(arg)), loaded }
    }
    case 'negative-write': {
      const got = await (await cacheFor(url, ns, null, { negativeTtl: 600 })).getOrLoad(arg, () => NOT_FOUND)
      return { notFound: got === undefined }
    }
    case 'negative-read': {
      const reader = await cacheFor(url, ns, null, { negativeTtl: 600 })
      let loaded = false
      const entry = await reader.getEntry(arg, () => { loaded = true; return 'loaded' })
      return { found: entry.found, loaded, get: (await reader.get(arg)) !== undefined }
    }
    case 'raw': {
      const raw = await cacheFor(url, ns, null, { raw: true })
      const plain = await cacheFor(url, ns)
      const out = { raw: [], enveloped: [] }
      for (const [k, v] of Object.entries(RAW_KEYS)) {
        out.raw.push(Buffer.isBuffer(await raw.get(k)) && (await raw.get(k)).equals(v))
        out.enveloped.push((await plain.get(k)) === undefined)
      }
      out.decodeErrors = plain.metrics().decodeErrors
      return out
    }
    default: throw new Error(`unknown command ${command}`)
  }
}

// Exit only once stdout is flushed: a pipe write is asynchronous in Node.
const emit = (out, code) => process.stdout.write(JSON.stringify(out, jsonSafe) + '\n', () => process.exit(code))
main(process.argv.slice(2)).then(
  (out) => emit(out, 0),
  (err) => emit({ error: `${err.code || err.name}: ${err.message}` }, 1)
)
