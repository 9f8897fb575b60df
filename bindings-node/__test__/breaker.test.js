'use strict'
// The circuit breaker as a Node user sees it (core/tests/breaker.rs tests the rules): after
// `breakerFailures` timeouts on a paused server, a write fails at once with ECONNECTION
// saying the circuit is open, and the metrics show the trip.
const test = require('node:test')
const assert = require('node:assert/strict')
const { Cache } = require('..')
const { harness, signal } = require('./helpers')

const TIMEOUT = 0.4

test('an open breaker fails a set fast with ECONNECTION and counts the trip', async () => {
  const { endpoints, stop } = await harness(['--standalone'])
  const addr = endpoints.standalone.replace('redis://', '')
  try {
    const cache = await Cache.connect(endpoints.standalone, {
      commandTimeout: TIMEOUT,
      breakerFailures: 2,
      breakerCooldown: 60,
    })
    await cache.set('k', 1)
    assert.deepEqual(cache.metrics().breakerStates, { [addr]: 'closed' })
    signal(endpoints, addr, 'SIGSTOP')
    for (let i = 0; i < 2; i++) {
      await assert.rejects(cache.set('k', 2), { code: 'ETIMEOUT' })
    }
    const started = performance.now()
    const err = await cache.set('k', 3).catch((e) => e)
    const ms = performance.now() - started
    assert.equal(err.code, 'ECONNECTION')
    assert.match(err.message, /circuit breaker open/)
    assert.ok(err.message.includes(addr), err.message)
    // Well inside the command timeout (a bound against the setting, not a speed claim).
    assert.ok(ms < (TIMEOUT * 1000) / 2, `an open breaker took ${ms.toFixed(1)} ms`)
    const m = cache.metrics()
    assert.equal(m.breakerTrips, 1)
    assert.equal(m.breakerOpen, 1)
    assert.equal(m.breakerRejected, 1)
    assert.deepEqual(m.breakerStates, { [addr]: 'open' })
  } finally {
    signal(endpoints, addr, 'SIGCONT')
    await stop()
  }
})
