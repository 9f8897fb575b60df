'use strict'
// err.code for every failure a caller can act on, on real servers: a closed port, a
// paused Redis (SIGSTOP), a Redis that comes back.
const test = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const { spawn } = require('node:child_process')
const { Cache } = require('..')
const { freePort } = require('./helpers')

async function startRedis() {
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  for (let i = 0; i < 100; i++) {
    const up = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.end(); resolve(true) })
      socket.on('error', () => resolve(false))
    })
    if (up) return { child, url: `redis://127.0.0.1:${port}` }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  child.kill()
  throw new Error('redis-server did not start')
}

test('a closed port is ECONNECTION, at connect and on calls', async () => {
  const url = `redis://127.0.0.1:${await freePort()}`
  await assert.rejects(Cache.connect(url, { connectTimeout: 0.5 }), (err) => err.code === 'ECONNECTION')
  const lazy = new Cache({ url, connectTimeout: 0.5 })
  await assert.rejects(lazy.get('k'), (err) => err.code === 'ECONNECTION')
})

for (const io of ['auto', 'async']) {
  test(`a paused Redis is ETIMEOUT within commandTimeout, then recovers (io: ${io})`, async () => {
    const { child, url } = await startRedis()
    try {
      const cache = await Cache.connect(url, { commandTimeout: 0.3, io })
      await cache.set('k', 'v')
      child.kill('SIGSTOP')
      const started = Date.now()
      await assert.rejects(cache.get('k'), (err) => err.code === 'ETIMEOUT' || err.code === 'ECONNECTION')
      const elapsed = Date.now() - started
      assert.ok(elapsed < 2000, `failed after ${elapsed} ms`)
      // getOrLoad fails open: the loader's value, and the store error is counted.
      assert.equal(await cache.getOrLoad('k2', () => 'fallback'), 'fallback')
      assert.ok(cache.metrics().storeErrors >= 1)
      child.kill('SIGCONT')
      let value
      for (let i = 0; i < 40 && value !== 'v'; i++) {
        value = await cache.get('k').catch(() => undefined)
        if (value !== 'v') await new Promise((resolve) => setTimeout(resolve, 100))
      }
      assert.equal(value, 'v')
    } finally {
      child.kill('SIGCONT')
      child.kill()
    }
  })
}

test('key and config errors', async () => {
  const cache = new Cache()
  await assert.rejects(cache.get(''), (err) => err.code === 'EKEY' && err instanceof Error)
  assert.throws(() => new Cache({ namespace: 'a{b' }), (err) => err.code === 'ECONFIG')
  assert.throws(() => new Cache({ jitter: 2 }), (err) => err.code === 'ECONFIG')
  await assert.rejects(Cache.connect('redis+shards://a:1,b:2?weights=1'), (err) => err.code === 'ECONFIG')
  await assert.rejects(Cache.connect('memory://?bogus=1'), (err) => err.code === 'ECONFIG')
  // The url of an options object is read as a URL: its query is not ignored.
  assert.throws(
    () => new Cache({ url: 'redis://127.0.0.1:1?bogus=1' }),
    (err) => err.code === 'ECONFIG' && /bogus/.test(err.message),
  )
  assert.equal(new Cache({ url: 'memory://?namespace=q' }).redisKey('k'), 'pc:q:{k}')
  // One message format in every language: the kind is in `code`, not in the message.
  assert.throws(() => new Cache({ nope: 1 }), (err) => err.message === 'unknown option "nope"')
})

test('a writer failure is the writer\'s own error and leaves the cache untouched', async () => {
  const failure = new Error('db down')
  const cache = new Cache({ writer: () => Promise.reject(failure) })
  await assert.rejects(cache.set('k', 1), (err) => err === failure)
  assert.equal(await cache.get('k'), undefined)
})
