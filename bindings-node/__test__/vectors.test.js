'use strict'
// Every case of tests/vectors/*.json through the binding: the JS <-> value mapping and the
// contract functions (docs/FORMAT.md). Node has no integral floats, so those few cases are
// checked in the decode direction only (counted in the test names).
const test = require('node:test')
const assert = require('node:assert/strict')
const pc = require('..')
const { typed, representable, same, vectors, hostileBytes } = require('./helpers')

function throwsCode(fn, code) {
  assert.throws(fn, (err) => err.code === code, `expected ${code}`)
}

function header(c) {
  return { codec: c.codec, createdAt: c.createdAt, freshUntil: c.freshUntil, schema: c.schema ?? undefined, tags: c.tags, notFound: c.notFound ?? false }
}

function checkDecoded(c, bytes) {
  const got = pc.decodeEnvelope(bytes)
  assert.ok(same(got.value, typed(c.value)), `${c.name}: decoded ${String(got.value)}`)
  assert.deepEqual(
    { codec: got.codec, createdAt: got.createdAt, freshUntil: got.freshUntil, schema: got.schema ?? undefined, tags: got.tags, notFound: got.notFound },
    header(c),
    c.name,
  )
}

test('envelope.json', async (t) => {
  const cases = vectors('envelope.json')
  let decodeOnly = 0
  for (const c of cases) {
    const bytes = Buffer.from(c.hex ?? '', 'hex')
    if (c.op === 'roundtrip') {
      checkDecoded(c, bytes)
      if (!representable(c.value)) {
        decodeOnly++
        continue
      }
      const encoded = pc.encodeEnvelope(typed(c.value), {
        codec: c.codec,
        compression: 'lz4',
        compressThreshold: c.compressThreshold,
        createdAt: c.createdAt,
        freshUntil: c.freshUntil,
        schema: c.schema ?? undefined,
        tags: c.tags,
      })
      if (c.exact) {
        assert.equal(encoded.toString('hex'), c.hex, c.name)
      } else {
        const headerLength = 8 + bytes.readUInt16BE(6)
        assert.equal(encoded.subarray(0, headerLength).toString('hex'), c.hex.slice(0, headerLength * 2), c.name)
        checkDecoded(c, encoded)
      }
      assert.equal(encoded[5], c.compression === 'lz4' ? 1 : 0, `${c.name}: compression id`)
    } else if (c.op === 'decode') {
      if (c.error) throwsCode(() => pc.decodeEnvelope(bytes), 'ECODEC')
      else checkDecoded(c, bytes)
    } else if (c.op === 'encode-error') {
      throwsCode(() => pc.encodeEnvelope(typed(c.value), { codec: c.codec }), 'ECODEC')
    } else {
      assert.fail(`${c.name}: unknown op ${c.op}`)
    }
  }
  assert.ok(cases.length >= 50)
  // Integral floats and -0.0 (6 cases today): more means `representable` hides cases.
  assert.ok(decodeOnly <= 6, `${decodeOnly} cases checked by decoding only`)
  t.diagnostic(`${cases.length} cases, ${decodeOnly} integral-float cases decode-only`)
})

test('keys.json', () => {
  const cases = vectors('keys.json')
  assert.ok(cases.length >= 50)
  for (const c of cases) {
    if (c.kind === 'schema') {
      const run = () => pc.redisKey(c.prefix, c.namespace, c.maxKeyLength, c.key)
      if (c.error) {
        throwsCode(run, c.error === 'key' ? 'EKEY' : 'ECONFIG')
        continue
      }
      const redisKey = run()
      assert.deepEqual(
        [redisKey, pc.lockKey(redisKey), pc.hashTag(redisKey), pc.slot(redisKey)],
        [c.redisKey, c.lockKey, c.hashTag, c.slot],
        c.name,
      )
    } else if (c.kind === 'slot') {
      assert.deepEqual([pc.hashTag(c.redisKey), pc.slot(c.redisKey)], [c.hashTag, c.slot], c.name)
    } else {
      assert.fail(`${c.name}: unknown kind ${c.kind}`)
    }
  }
})

test('lock.json: lock keys share their value key\'s slot', () => {
  // The lock's scripts, tokens and poll pauses live in core (core/tests/lock.rs).
  const cases = vectors('lock.json').filter((c) => c.kind === 'lock-key')
  assert.ok(cases.length >= 40)
  for (const c of cases) {
    const redisKey = pc.redisKey(c.prefix, c.namespace, 200, c.key)
    const lockKey = pc.lockKey(redisKey)
    assert.deepEqual([redisKey, lockKey], [c.redisKey, c.lockKey], c.name)
    assert.deepEqual([pc.slot(lockKey), pc.slot(redisKey)], [c.slot, c.slot], c.name)
  }
})

test('ring.json', () => {
  const cases = vectors('ring.json')
  assert.ok(cases.length >= 50)
  for (const c of cases) {
    if (c.kind === 'placement') {
      const ring = new pc.Ring(c.nodes)
      assert.equal(ring.size, c.continuumSize, c.name)
      assert.deepEqual(ring.head(c.continuumHead.length), c.continuumHead, c.name)
      for (const p of c.placements) assert.equal(ring.nodeFor(p.key), p.node, `${c.name}: ${p.key}`)
    } else if (c.kind === 'movement') {
      const before = new pc.Ring(c.before)
      const after = new pc.Ring(c.after)
      let moved = 0
      const balance = {}
      for (let i = 0; i < c.count; i++) {
        const key = c.keyPattern.replace('{i}', String(i))
        const to = after.nodeFor(key)
        if (before.nodeFor(key) !== to) moved++
        balance[to] = (balance[to] ?? 0) + 1
      }
      assert.equal(moved, c.moved, c.name)
      assert.deepEqual(balance, c.balance, c.name)
    } else {
      assert.fail(`${c.name}: unknown kind ${c.kind}`)
    }
  }
})

test('templates.json', async (t) => {
  const cases = vectors('templates.json')
  let keyOnly = 0
  for (const c of cases) {
    if (!c.args.every(representable) || !Object.values(c.named ?? {}).every(representable)) {
      keyOnly++ // an integral float argument: Node passes the integer
      continue
    }
    const args = c.args.map(typed)
    if (c.kind === 'template') {
      const named = Object.fromEntries(Object.entries(c.named).map(([k, v]) => [k, typed(v)]))
      const run = () => pc.renderKey(c.template, args, named)
      if (c.error) throwsCode(run, c.error === 'key' ? 'EKEY' : 'ECONFIG')
      else assert.equal(run(), c.key, c.name)
    } else if (c.kind === 'default') {
      // Named arguments (FORMAT.md §5): Node passes [positional, named] as the argument list.
      const named = Object.fromEntries(Object.entries(c.named).map(([k, v]) => [k, typed(v)]))
      const hashed = Object.keys(named).length ? [args, named] : args
      assert.equal(pc.callKey(c.function, hashed), c.key, c.name)
    } else {
      assert.fail(`${c.name}: unknown kind ${c.kind}`)
    }
  }
  assert.ok(cases.length >= 50)
  assert.ok(keyOnly <= 3, `${keyOnly} cases with integral-float arguments skipped`)
  t.diagnostic(`${cases.length} cases, ${keyOnly} with integral-float arguments skipped`)
})

// --- hostile.json: bounded time and memory (docs/FORMAT.md section 1, "Limits") ----------
const fs = require('node:fs')
const { redis, uniqueNamespace } = require('./helpers')

const HOSTILE_MAX_RSS = 64 * 1024 * 1024
const HOSTILE_MAX_MS = 2000 // a hang detector, not a speed assertion

/** Peak resident memory of this process (VmHWM), in bytes. */
function peakRss() {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'))
  return m ? Number(m[1]) * 1024 : process.resourceUsage().maxRSS * 1024
}

/** Lowers the peak to the current size where Linux allows it. */
function resetPeakRss() {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5')
  } catch {}
}

/** Runs `fn`, returning its elapsed time and how much the peak RSS grew meanwhile. */
async function measured(fn) {
  resetPeakRss()
  const before = peakRss()
  const started = performance.now()
  const result = await fn()
  return { result, ms: performance.now() - started, grew: peakRss() - before }
}

test('urls.json', () => {
  const cases = vectors('urls.json')
  assert.ok(cases.length >= 60)
  for (const c of cases) {
    const resolve = () => JSON.parse(pc.resolveConfig(c.url, JSON.stringify(c.options)))
    if (c.error) throwsCode(resolve, `E${c.error.toUpperCase()}`)
    else assert.deepEqual(resolve(), c.config, c.name)
  }
})

test('xfetch.json', () => {
  const cases = vectors('xfetch.json')
  assert.ok(cases.length >= 60)
  for (const c of cases) {
    assert.equal(pc.shouldRefreshEarly(c.now, c.freshUntil, c.delta, c.beta, c.random), c.refresh, c.name)
  }
})

test('hostile.json', async () => {
  const cases = vectors('hostile.json')
  assert.ok(cases.length >= 50)
  for (const c of cases) {
    const bytes = hostileBytes(c)
    const { result, ms, grew } = await measured(() => {
      try {
        return { value: pc.decodeEnvelope(bytes).value }
      } catch (err) {
        return { err }
      }
    })
    if (c.expect === 'decode_error') assert.equal(result.err?.code, 'ECODEC', c.name)
    else {
      assert.equal(result.err, undefined, `${c.name}: ${result.err}`)
      if (c.expect === 'value') assert.ok(same(result.value, typed(c.value)), c.name)
    }
    assert.ok(ms < HOSTILE_MAX_MS, `${c.name}: took ${ms} ms`)
    assert.ok(grew < HOSTILE_MAX_RSS, `${c.name}: peak RSS grew by ${grew} bytes`)
  }
})

test('hostile values in Redis are counted misses', async () => {
  const url = (await redis()).standalone
  const namespace = uniqueNamespace('hostile')
  const hostile = vectors('hostile.json').filter((c) => c.expect === 'decode_error')
  const raw = await pc.Cache.connect(url, { namespace, raw: true })
  for (const c of hostile) await raw.set(c.name, hostileBytes(c))
  const cache = await pc.Cache.connect(url, { namespace })
  for (const c of hostile) {
    const { result, ms, grew } = await measured(() => cache.get(c.name))
    assert.equal(result, undefined, c.name)
    assert.ok(ms < HOSTILE_MAX_MS, `${c.name}: took ${ms} ms`)
    assert.ok(grew < HOSTILE_MAX_RSS, `${c.name}: peak RSS grew by ${grew} bytes`)
  }
  const m = cache.metrics()
  assert.equal(m.decodeErrors, hostile.length)
  assert.equal(m.misses, hostile.length)
  assert.equal(m.hits, 0)
  raw.close()
  cache.close()
})
