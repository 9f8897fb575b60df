'use strict'
// Calls under fault, on servers of this file's own (paused with SIGSTOP): every call is
// bounded by its own commandTimeout (never by the calls queued before it), and a slow or
// dead node fails only its own keys.
const test = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const { Cache, Ring, slot } = require('..')
const { harness, signal } = require('./helpers')

const TIMEOUT = 0.5
// The bound every fault test asserts: timeout × 1.2 + 50 ms.
const BOUND_MS = TIMEOUT * 1000 * 1.2 + 50

/** Runs `calls` (functions returning promises) in one tick; each one's outcome and time. */
async function timed(calls) {
  return Promise.all(
    calls.map((call) => {
      const started = performance.now()
      return call().then(
        (value) => ({ ok: true, value, ms: performance.now() - started }),
        (err) => ({ ok: false, code: err.code, ms: performance.now() - started }),
      )
    }),
  )
}

for (const io of ['auto', 'async']) {
  test(`a paused server: 1,000 concurrent get/set each settle within its own timeout (io: ${io})`, async () => {
    const { endpoints, stop } = await harness(['--standalone'])
    const addr = endpoints.standalone.replace('redis://', '')
    try {
      const cache = await Cache.connect(endpoints.standalone, { commandTimeout: TIMEOUT, io })
      await cache.set('warm', 1)
      signal(endpoints, addr, 'SIGSTOP')
      const calls = Array.from({ length: 1000 }, (_, i) =>
        i % 2 === 0 ? () => cache.get(`k${i}`) : () => cache.set(`k${i}`, i),
      )
      const outcomes = await timed(calls)
      for (const [i, outcome] of outcomes.entries()) {
        assert.equal(outcome.ok, false, `call ${i} succeeded on a paused server`)
        assert.ok(['ETIMEOUT', 'ECONNECTION'].includes(outcome.code), `call ${i}: ${outcome.code}`)
        assert.ok(outcome.ms <= BOUND_MS, `call ${i} settled after ${outcome.ms.toFixed(0)} ms (bound ${BOUND_MS} ms)`)
      }
    } finally {
      signal(endpoints, addr, 'SIGCONT')
      await stop()
    }
  })
}

test('a paused shard fails only its own keys, within the timeout', async () => {
  const { endpoints, stop } = await harness(['--shards', '3'])
  const nodes = endpoints.shards.replace('redis+shards://', '').split(',')
  const dead = nodes[1]
  try {
    const cache = await Cache.connect(endpoints.shards, { commandTimeout: TIMEOUT })
    const ring = new Ring(nodes.map((name) => ({ name })))
    const live = []
    let doomed
    for (let i = 0; live.length < 50 || doomed === undefined; i++) {
      const key = `iso:${i}`
      if (ring.nodeFor(cache.redisKey(key)) === dead) doomed ??= key
      else if (live.length < 50) live.push(key)
    }
    await cache.setMany([...live, doomed].map((key) => [key, key]))
    signal(endpoints, dead, 'SIGSTOP')
    // 50 live reads + 1 dead in one tick (one MGET per node), then the same with writes.
    const keys = [...live.slice(0, 25), doomed, ...live.slice(25)]
    for (const [what, call] of [
      ['get', (key) => cache.get(key)],
      ['set', (key) => cache.set(key, key)],
    ]) {
      const outcomes = await timed(keys.map((key) => () => call(key)))
      for (const [i, outcome] of outcomes.entries()) {
        const key = keys[i]
        if (key === doomed) {
          assert.equal(outcome.ok, false, `${what} of the key on the paused shard succeeded`)
          assert.equal(outcome.code, 'ETIMEOUT')
        } else {
          assert.ok(outcome.ok, `${what} ${key} on a live shard failed: ${outcome.code}`)
          if (what === 'get') assert.equal(outcome.value, key)
        }
        assert.ok(outcome.ms <= BOUND_MS, `${what} ${key} settled after ${outcome.ms.toFixed(0)} ms`)
      }
    }
  } finally {
    signal(endpoints, dead, 'SIGCONT')
    await stop()
  }
})

/** The slot ranges `[from, to]` a cluster node serves (CLUSTER NODES, its "myself" line). */
function slotsOf(addr) {
  const [host, port] = addr.split(':')
  const nodes = execFileSync(process.env.REDIS_CLI || 'redis-cli', ['-h', host, '-p', port, 'cluster', 'nodes'], { encoding: 'utf8' })
  const mine = nodes.split('\n').find((line) => line.includes('myself'))
  return mine.trim().split(' ').slice(8).filter((r) => /^\d/.test(r)).map((r) => {
    const [from, to = from] = r.split('-').map(Number)
    return [from, to]
  })
}

test('a paused cluster master fails only its own keys, within the timeout', async () => {
  const { endpoints, stop } = await harness(['--cluster', '3'])
  const nodes = endpoints.cluster.replace('redis+cluster://', '').split(',')
  const dead = nodes[2]
  try {
    const cache = await Cache.connect(endpoints.cluster, { commandTimeout: TIMEOUT })
    const ranges = slotsOf(dead)
    const onDead = (key) => {
      const s = slot(cache.redisKey(key))
      return ranges.some(([from, to]) => s >= from && s <= to)
    }
    const live = []
    let doomed
    for (let i = 0; live.length < 50 || doomed === undefined; i++) {
      const key = `iso:${i}`
      if (onDead(key)) doomed ??= key
      else if (live.length < 50) live.push(key)
    }
    await cache.setMany([...live, doomed].map((key) => [key, key]))
    // The cluster marks a paused master failed after its node timeout (2 s), and then the
    // others refuse everything: the calls below run well inside that window.
    signal(endpoints, dead, 'SIGSTOP')
    const keys = [...live.slice(0, 25), doomed, ...live.slice(25)]
    const outcomes = await timed(keys.map((key) => () => cache.get(key)))
    for (const [i, outcome] of outcomes.entries()) {
      const key = keys[i]
      if (key === doomed) assert.equal(outcome.ok, false, 'the read of the key on the paused master succeeded')
      else assert.ok(outcome.ok && outcome.value === key, `get ${key} on a live master: ${outcome.code ?? outcome.value}`)
      assert.ok(outcome.ms <= BOUND_MS, `get ${key} settled after ${outcome.ms.toFixed(0)} ms`)
    }
  } finally {
    signal(endpoints, dead, 'SIGCONT')
    await stop()
  }
})
