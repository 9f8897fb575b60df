// The package with a transport of the platform's own, as an edge function uses it: here a
// minimal RESP client over node:net against the harness's Redis. Values go in as envelopes
// under polycache's keys with SET PX and come back through GET; the sharded topology is
// addressed through the ring, so every key lands on the shard every runtime picks.
import test from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import readline from 'node:readline'
import path from 'node:path'
import { pc, root, same } from './helpers.mjs'
import { Resp } from './resp.mjs'

/** Harness endpoints: POLYCACHE_TEST_REDIS (scripts/with-redis), or a harness of our own. */
async function endpoints() {
  if (process.env.POLYCACHE_TEST_REDIS) return JSON.parse(process.env.POLYCACHE_TEST_REDIS)
  const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target')
  const harness = path.join(targetDir, process.env.CARGO_BUILD_TARGET || '', 'debug', 'polycache-harness')
  const child = spawn(harness, [], { stdio: ['pipe', 'pipe', 'inherit'] })
  const line = await new Promise((resolve, reject) => {
    child.once('error', reject)
    readline.createInterface({ input: child.stdout }).once('line', resolve)
  })
  // The harness stops its servers when its stdin closes, i.e. when this process exits.
  child.unref()
  child.stdout.destroy()
  child.stdin.unref()
  return JSON.parse(line)
}

const namespace = `wasm-js-${process.pid}`

test('write and read through a transport of our own, on the shard every runtime picks', async () => {
  const shards = (await endpoints()).shards.replace('redis+shards://', '').split(',')
  const ring = new pc.Ring(shards.map((name) => ({ name })))
  const conns = await Promise.all(shards.map((s) => Resp.connect(s)))
  try {
    const perShard = shards.map(() => 0)
    for (let i = 0; i < 60; i++) {
      const value = { id: i, name: `user ${i}`, tags: ['edge'], avatar: new Uint8Array([i]) }
      const key = pc.redisKey('pc', namespace, 200, `user:${i}`)
      const owner = shards.indexOf(ring.nodeFor(key))
      perShard[owner]++
      const bytes = pc.encodeEnvelope(value, { createdAt: Date.now() })
      assert.equal(await conns[owner].command('SET', key, bytes, 'PX', '60000'), 'OK')

      const stored = await conns[owner].command('GET', key)
      assert.ok(same(pc.decodeEnvelope(stored).value, value), key)
      const ttl = await conns[owner].command('PTTL', key)
      assert.ok(ttl > 55000 && ttl <= 60000, `${ttl}`)
      for (const [n, conn] of conns.entries()) {
        if (n !== owner) assert.equal(await conn.command('GET', key), null, `${key} only on its shard`)
      }
    }
    assert.ok(perShard.every((n) => n > 5), `every shard gets keys: ${perShard}`)
  } finally {
    conns.forEach((c) => c.close())
  }
})

test('bytes another program wrote are a codec error, as in every runtime', async () => {
  const url = (await endpoints()).standalone.replace('redis://', '')
  const conn = await Resp.connect(url)
  try {
    const key = pc.redisKey('pc', namespace, 200, 'foreign')
    await conn.command('SET', key, 'written by redis-cli')
    const stored = await conn.command('GET', key)
    assert.throws(() => pc.decodeEnvelope(stored), (err) => err.code === 'ECODEC')
  } finally {
    conn.close()
  }
})
