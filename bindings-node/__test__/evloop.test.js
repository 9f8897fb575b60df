'use strict'
// The call path on the JS thread (docs/node.md, "The call path"): calls to plain Redis nodes
// do their socket I/O on this thread's event loop, so the properties that the old path got
// from running on other threads are checked here: a paused server never blocks the loop,
// loaders that call the cache and re-entrant loads work against Redis, worker threads
// have their own loops, broken connections are reopened, and only pending promises keep
// the process alive.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { Worker } = require('node:worker_threads')
const { Cache } = require('..')
const { redis, harness, signal, uniqueNamespace, waitUntil } = require('./helpers')

const TIMEOUT = 0.5
// The bound every fault test asserts: timeout × 1.2 + 50 ms.
const BOUND_MS = TIMEOUT * 1000 * 1.2 + 50
const code = (expected) => (err) => err.code === expected

/** `CLIENT KILL TYPE normal` on the server of `url`: it closes every client connection. */
async function killClients(url) {
  const net = require('node:net')
  const [host, port] = url.replace('redis://', '').split(':')
  const args = ['CLIENT', 'KILL', 'TYPE', 'normal']
  const command = `*${args.length}\r\n` + args.map((a) => `$${a.length}\r\n${a}\r\n`).join('')
  const reply = await new Promise((resolve, reject) => {
    const socket = net.createConnection({ host, port: Number(port) }, () => socket.write(command))
    socket.once('data', (data) => { resolve(String(data)); socket.destroy() })
    socket.once('error', reject)
  })
  assert.match(reply, /^:\d+/, `CLIENT KILL answered ${reply}`)
}

test('a get on a paused server times out within its timeout while the event loop keeps running', async () => {
  const { endpoints, stop } = await harness(['--standalone'])
  const addr = endpoints.standalone.replace('redis://', '')
  try {
    const cache = await Cache.connect(endpoints.standalone, { commandTimeout: TIMEOUT })
    await cache.set('k', 1)
    signal(endpoints, addr, 'SIGSTOP')
    let ticks = 0
    const interval = setInterval(() => { ticks++ }, 10)
    const started = performance.now()
    await assert.rejects(cache.get('k'), code('ETIMEOUT'))
    const elapsed = performance.now() - started
    clearInterval(interval)
    assert.ok(elapsed >= TIMEOUT * 1000 * 0.9, `settled after ${elapsed.toFixed(0)} ms, before its timeout`)
    assert.ok(elapsed <= BOUND_MS, `settled after ${elapsed.toFixed(0)} ms (bound ${BOUND_MS} ms)`)
    // A 10 ms interval over a ~500 ms wait: a loop blocked by the call would tick once.
    assert.ok(ticks >= 5, `the interval ticked ${ticks} times while the call waited`)
    signal(endpoints, addr, 'SIGCONT')
    assert.equal(await cache.get('k'), 1)
  } finally {
    signal(endpoints, addr, 'SIGCONT')
    await stop()
  }
})

test("a turn's first call is written before it returns; the calls after it wait for the turn's microtask", async () => {
  const { endpoints, stop } = await harness(['--standalone'])
  const port = endpoints.standalone.split(':').pop()
  // The server's count of a command. `execFileSync` blocks this thread, so no microtask
  // runs while it waits: what the server counted was written before the call returned.
  const calls = (command) => {
    const stats = execFileSync(process.env.REDIS_CLI || 'redis-cli', ['-p', port, 'INFO', 'commandstats'], { encoding: 'utf8' })
    return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0)
  }
  try {
    const cache = await Cache.connect(endpoints.standalone)
    await cache.set('a', 1)
    await cache.set('b', 2)
    const [gets, mgets] = [calls('get'), calls('mget')]
    const first = cache.get('a')
    assert.equal(calls('get'), gets + 1, 'the first get of the turn reached the server before it returned')
    const later = [cache.get('b'), cache.get('c')]
    assert.equal(calls('get') + calls('mget'), gets + 1 + mgets, 'the later gets waited for the microtask')
    assert.deepEqual(await Promise.all([first, ...later]), [1, 2, undefined])
    assert.equal(calls('mget'), mgets + 1, "the turn's later gets went as one MGET")
    assert.equal(calls('get'), gets + 1)
  } finally {
    await stop()
  }
})

test('a turn of one call schedules no microtask; a turn of several schedules one flush', async () => {
  const { endpoints, stop } = await harness(['--standalone'])
  // A cache takes `queueMicrotask` when it is made: count what it schedules.
  const original = globalThis.queueMicrotask
  let scheduled = 0
  globalThis.queueMicrotask = (task) => { scheduled++; original(task) }
  try {
    const cache = await Cache.connect(endpoints.standalone)
    await cache.set('k', 1)
    const before = scheduled
    for (let i = 0; i < 20; i++) assert.equal(await cache.get('k'), 1)
    assert.equal(scheduled, before, 'sequential calls scheduled a flush')
    assert.deepEqual(await Promise.all([cache.get('k'), cache.get('k'), cache.set('j', 2)]), [1, 1, undefined])
    assert.equal(scheduled, before + 1, 'a turn of three calls scheduled one flush')
    assert.equal(await cache.get('j'), 2)
  } finally {
    globalThis.queueMicrotask = original
    await stop()
  }
})

test('a connection the server closes is reopened', async () => {
  const { endpoints, stop } = await harness(['--standalone'])
  try {
    const cache = await Cache.connect(endpoints.standalone, { commandTimeout: TIMEOUT })
    await cache.set('k', 'v')
    await killClients(endpoints.standalone)
    // The first call may see the old connection break; the next one runs on a new one.
    let value
    for (let attempt = 0; attempt < 2 && value === undefined; attempt++) {
      value = await cache.get('k').catch(() => undefined)
    }
    assert.equal(value, 'v')
  } finally {
    await stop()
  }
})

test('loaders that call the cache, and re-entrant loads, on Redis', async () => {
  const { standalone } = await redis()
  const cache = await Cache.connect(standalone, { namespace: uniqueNamespace('evloop-load') })
  const within = (promise) => Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error('still waiting after 5 s: a deadlock')), 5000).unref()),
  ])
  await cache.set('base', 40)
  const outer = await within(cache.getOrLoad('outer', async () => (await cache.get('base')) + 2))
  assert.equal(outer, 42)
  assert.equal(await cache.get('outer'), 42)
  const self = async () => (await cache.getOrLoad('self', self)) + 1
  await assert.rejects(within(cache.getOrLoad('self', self)), code('ELOADER'))
  const rt = await Cache.connect(standalone, {
    namespace: uniqueNamespace('evloop-rt'),
    loader: async (key) => (key === 'a' ? (await rt.get('b')) + 1 : 1),
  })
  assert.equal(await within(rt.get('a')), 2)
  cache.close()
  rt.close()
})

test('caches on worker threads run on their own threads\' loops', async () => {
  const { standalone } = await redis()
  const namespace = uniqueNamespace('evloop-worker')
  const main = await Cache.connect(standalone, { namespace })
  const source = `
    const { parentPort, workerData } = require('node:worker_threads')
    const { Cache } = require(workerData.binding)
    ;(async () => {
      const cache = await Cache.connect(workerData.url, { namespace: workerData.namespace })
      const id = workerData.id
      for (let i = 0; i < 50; i++) await cache.set(id + ':' + i, { id, i })
      const values = await Promise.all(Array.from({ length: 50 }, (_, i) => cache.get(id + ':' + i)))
      parentPort.postMessage(values.every((v, i) => v.id === id && v.i === i))
    })().catch((err) => parentPort.postMessage(String(err)))
  `
  const binding = path.resolve(__dirname, '..')
  const workers = [1, 2].map((id) => new Promise((resolve, reject) => {
    const worker = new Worker(source, { eval: true, workerData: { binding, url: standalone, namespace, id: `w${id}` } })
    worker.once('message', (message) => { resolve(message); worker.terminate() })
    worker.once('error', reject)
  }))
  // The main thread keeps calling meanwhile.
  const mine = Promise.all(Array.from({ length: 50 }, (_, i) => main.set(`m:${i}`, i).then(() => main.get(`m:${i}`))))
  assert.deepEqual(await Promise.all(workers), [true, true])
  assert.deepEqual(await mine, Array.from({ length: 50 }, (_, i) => i))
  assert.deepEqual(await main.get('w1:7'), { id: 'w1', i: 7 })
  main.close()
})

test('an idle cache lets the process exit; a pending call keeps it alive until it settles', async () => {
  const { standalone } = await redis()
  const binding = JSON.stringify(path.resolve(__dirname, '..'))
  const script = `
    const { Cache } = require(${binding})
    Cache.connect(${JSON.stringify(standalone)}, { namespace: 'evloop-exit' }).then(async (cache) => {
      await cache.set('k', 'v')
      // Nothing but this promise is pending: the process must wait for it.
      cache.get('k').then((v) => console.log('got ' + v))
    })
  `
  // The child exits on its own once the get settled (execFileSync's timeout would kill a
  // process that an idle connection kept alive).
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 })
  assert.equal(out.trim(), 'got v')
})

test('large values come back whole, alone and in getMany', async () => {
  const { standalone } = await redis()
  const cache = await Cache.connect(standalone, { namespace: uniqueNamespace('evloop-large') })
  // Floats do not compress: ~360 KB stored, read in several socket reads.
  const floats = Array.from({ length: 40000 }, (_, i) => i * 0.3183098861837907 + 0.1)
  const records = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [
    `field_${i}`, { id: i, name: `user ${i} ${Math.random()}`, tags: ['a', 'b'], ok: i % 2 === 0 },
  ]))
  await cache.set('floats', floats)
  await cache.set('records', records)
  assert.deepEqual(await cache.get('floats'), floats)
  assert.deepEqual(await cache.get('records'), records)
  const [a, missing, b] = await cache.getMany(['floats', 'nothing', 'records'])
  assert.deepEqual(a, floats)
  assert.equal(missing, undefined)
  assert.deepEqual(b, records)
  assert.equal(cache.metrics().hits, 4)
  cache.close()
})

test('a connection that a background refresh reopens (off the JS thread) connects before its connect timeout', async () => {
  const net = require('node:net')
  const { endpoints, stop } = await harness(['--standalone'])
  const url = endpoints.standalone
  const port = Number(url.split(':').pop())
  const open = () => process._getActiveHandles().filter((h) => h instanceof net.Socket && h.remotePort === port).length
  try {
    // A long connect timeout: a handshake whose writes nobody flushes would wait all of it.
    const namespace = uniqueNamespace('evloop-bg')
    const cache = await Cache.connect(url, { namespace, ttl: 60, connectTimeout: 30, commandTimeout: 30 })
    assert.equal(await cache.getOrLoad('k', () => 1, { freshFor: 0.05 }), 1)
    // The refresh's loader closes the cache's connection and waits until it is gone, so the
    // refresh's set reopens it from core's background task, on a tokio thread.
    let loaded = false
    const loader = async () => {
      await killClients(url)
      await waitUntil(() => open() === 0, 'the killed connection is closed')
      loaded = true
      return 2
    }
    await waitUntil(async () => (await cache.getEntry('k', loader, { freshFor: 0.05 })).stale, 'the value is stale')
    await waitUntil(() => loaded, 'the refresh loaded')
    const observer = await Cache.connect(url, { namespace })
    // Its set either reopens the connection and stores, or fails on the closed one (a
    // store error); a reopen that stalls until its connect timeout does neither in time.
    await waitUntil(async () => cache.metrics().storeErrors > 0 || (await observer.get('k')) === 2,
      'the refresh\'s set stores its value or fails', 10000)
  } finally {
    await stop()
  }
})

test('connects that time out against a black hole leave no socket open', async () => {
  const fs = require('node:fs')
  const { endpoints, stop } = await harness(['--blackhole'])
  const port = Number(endpoints.blackhole.split(':').pop())
  // Sockets still connecting to the black hole (SYN-SENT, state 02, in /proc/net/tcp): only
  // this process connects to it, and its sockets are unreferenced (not in _getActiveHandles).
  const connecting = () => fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length > 3 && parseInt(f[2].split(':')[1], 16) === port && f[3] === '02').length
  try {
    for (let i = 0; i < 5; i++) {
      const attempt = Cache.connect(endpoints.blackhole, { connectTimeout: 0.1, commandTimeout: 0.1 })
        .then((cache) => cache.get('k'))
      await assert.rejects(attempt)
    }
    await waitUntil(() => connecting() === 0, 'the timed-out connects\' sockets are destroyed', 5000)
  } finally {
    await stop()
  }
})

test('sets to a paused server that time out do not pile up in the socket\'s buffers', async () => {
  const v8 = require('node:v8')
  v8.setFlagsFromString('--expose-gc')
  const gc = require('node:vm').runInNewContext('gc')
  const { endpoints, stop } = await harness(['--standalone'])
  const addr = endpoints.standalone.replace('redis://', '')
  try {
    const cache = await Cache.connect(endpoints.standalone, { namespace: uniqueNamespace('evloop-bp'), commandTimeout: TIMEOUT })
    await cache.set('k', 1)
    signal(endpoints, addr, 'SIGSTOP')
    const value = require('node:crypto').randomBytes(1 << 20) // incompressible
    const sets = Array.from({ length: 100 }, (_, i) => cache.set(`big${i}`, value))
    for (const set of sets) await assert.rejects(set, code('ETIMEOUT'))
    gc()
    const held = process.memoryUsage().arrayBuffers
    // 100 MB of requests were made; without a bound every one waits in the socket's buffer.
    assert.ok(held < 48 << 20, `${(held / 2 ** 20).toFixed(0)} MB of buffers held after 100 timed-out 1 MB sets`)
    signal(endpoints, addr, 'SIGCONT')
    assert.equal(await cache.get('k'), 1)
  } finally {
    signal(endpoints, addr, 'SIGCONT')
    await stop()
  }
})
