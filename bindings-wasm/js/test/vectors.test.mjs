// Every case of tests/vectors/*.json through the wasm-bindgen package. Integral floats
// have no JS form, so those cases are checked by decoding only (counted in the names).
import test from 'node:test'
import assert from 'node:assert/strict'
import { pc, vectors, typed, representable, same, hex, hostileBytes } from './helpers.mjs'

function throwsCode(fn, code, name) {
  assert.throws(fn, (err) => err.code === code, `${name}: expected ${code}`)
}

function checkDecoded(c, bytes) {
  const got = pc.decodeEnvelope(bytes)
  assert.ok(same(got.value, typed(c.value)), `${c.name}: decoded ${String(got.value)}`)
  assert.deepEqual(
    { codec: got.codec, createdAt: got.createdAt, freshUntil: got.freshUntil, schema: got.schema, tags: got.tags, notFound: got.notFound },
    { codec: c.codec, createdAt: c.createdAt, freshUntil: c.freshUntil, schema: c.schema ?? undefined, tags: c.tags, notFound: c.notFound ?? false },
    c.name,
  )
  if (c.compression) assert.equal(got.compression, c.compression, `${c.name}: compression`)
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
      assert.ok(encoded instanceof Uint8Array)
      if (c.exact) {
        assert.equal(hex(encoded), c.hex, c.name)
      } else {
        const headerLength = 8 + bytes.readUInt16BE(6)
        assert.equal(hex(encoded.subarray(0, headerLength)), c.hex.slice(0, headerLength * 2), c.name)
        checkDecoded(c, encoded)
      }
      assert.equal(encoded[5], c.compression === 'lz4' ? 1 : 0, `${c.name}: compression id`)
    } else if (c.op === 'decode') {
      if (c.error) throwsCode(() => pc.decodeEnvelope(bytes), 'ECODEC', c.name)
      else checkDecoded(c, bytes)
    } else if (c.op === 'encode-error') {
      throwsCode(() => pc.encodeEnvelope(typed(c.value), { codec: c.codec }), 'ECODEC', c.name)
    } else {
      assert.fail(`${c.name}: unknown op ${c.op}`)
    }
  }
  assert.ok(cases.length >= 50)
  // Integral floats and -0.0 (6 cases today): more means `representable` hides cases.
  assert.ok(decodeOnly <= 6, `${decodeOnly} cases checked by decoding only`)
  t.diagnostic(`${cases.length} cases, ${decodeOnly} checked by decoding only`)
})

test('keys.json', () => {
  const cases = vectors('keys.json')
  for (const c of cases) {
    if (c.kind === 'schema') {
      const make = () => pc.redisKey(c.prefix, c.namespace, c.maxKeyLength, c.key)
      if (c.error) {
        throwsCode(make, c.error === 'key' ? 'EKEY' : 'ECONFIG', c.name)
        continue
      }
      const key = make()
      assert.deepEqual(
        [key, pc.lockKey(key), pc.hashTag(key), pc.slot(key)],
        [c.redisKey, c.lockKey, c.hashTag, c.slot],
        c.name,
      )
    } else if (c.kind === 'slot') {
      assert.deepEqual([pc.hashTag(c.redisKey), pc.slot(c.redisKey)], [c.hashTag, c.slot], c.name)
    } else {
      assert.fail(`${c.name}: unknown kind ${c.kind}`)
    }
  }
  assert.ok(cases.length >= 50)
})

test('ring.json', () => {
  const cases = vectors('ring.json')
  for (const c of cases) {
    if (c.kind === 'placement') {
      const ring = new pc.Ring(c.nodes)
      assert.equal(ring.size, c.continuumSize, c.name)
      assert.deepEqual(ring.head(c.continuumHead.length), c.continuumHead, c.name)
      for (const p of c.placements) assert.equal(ring.nodeFor(p.key), p.node, `${c.name}: ${p.key}`)
      ring.free()
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
      before.free()
      after.free()
    } else {
      assert.fail(`${c.name}: unknown kind ${c.kind}`)
    }
  }
  assert.ok(cases.length >= 50)
})

test('templates.json', async (t) => {
  const cases = vectors('templates.json')
  let skipped = 0
  for (const c of cases) {
    // Integral floats become integers in JS (`1.0` renders as `1`), so their keys differ
    // by design (FORMAT.md §2); Node has the same rule.
    if (![...c.args, ...Object.values(c.named ?? {})].every(representable)) {
      skipped++
      continue
    }
    const args = c.args.map(typed)
    if (c.kind === 'template') {
      const named = Object.fromEntries(Object.entries(c.named).map(([k, v]) => [k, typed(v)]))
      const render = () => pc.renderKey(c.template, args, named)
      if (c.error) throwsCode(render, c.error === 'key' ? 'EKEY' : 'ECONFIG', c.name)
      else assert.equal(render(), c.key, c.name)
    } else if (c.kind === 'default') {
      // Named arguments (FORMAT.md §5): passed as the argument list [positional, named].
      const named = Object.fromEntries(Object.entries(c.named).map(([k, v]) => [k, typed(v)]))
      const hashed = Object.keys(named).length ? [args, named] : args
      assert.equal(pc.callKey(c.function, hashed), c.key, c.name)
    } else {
      assert.fail(`${c.name}: unknown kind ${c.kind}`)
    }
  }
  assert.ok(cases.length >= 50)
  assert.ok(skipped <= 3, `${skipped} cases with integral floats skipped`)
  t.diagnostic(`${cases.length} cases, ${skipped} with integral floats not expressible in JS`)
})

// --- hostile.json: bounded time and memory (docs/FORMAT.md section 1, "Limits") ----------
const HOSTILE_MAX_RSS = 64 * 1024 * 1024
const HOSTILE_MAX_MS = 2000 // a hang detector, not a speed assertion

/** Peak resident memory of this process (VmHWM), in bytes. */
async function peakRss() {
  const { readFileSync } = await import('node:fs')
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))
  return m ? Number(m[1]) * 1024 : process.resourceUsage().maxRSS * 1024
}

/** Lowers the peak to the current size where Linux allows it. */
async function resetPeakRss() {
  const { writeFileSync } = await import('node:fs')
  try {
    writeFileSync('/proc/self/clear_refs', '5')
  } catch {}
}

test('urls.json', () => {
  const cases = vectors('urls.json')
  assert.ok(cases.length >= 60)
  for (const c of cases) {
    const resolve = () => JSON.parse(pc.resolveConfig(c.url, JSON.stringify(c.options)))
    if (c.error) throwsCode(resolve, `E${c.error.toUpperCase()}`, c.name)
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
    await resetPeakRss()
    const before = await peakRss()
    const started = performance.now()
    let result
    try {
      result = { value: pc.decodeEnvelope(bytes).value }
    } catch (err) {
      result = { err }
    }
    const ms = performance.now() - started
    const grew = (await peakRss()) - before
    if (c.expect === 'decode_error') assert.equal(result.err?.code, 'ECODEC', c.name)
    else {
      assert.equal(result.err, undefined, `${c.name}: ${result.err}`)
      if (c.expect === 'value') assert.ok(same(result.value, typed(c.value)), c.name)
    }
    assert.ok(ms < HOSTILE_MAX_MS, `${c.name}: took ${ms} ms`)
    assert.ok(grew < HOSTILE_MAX_RSS, `${c.name}: peak RSS grew by ${grew} bytes`)
  }
})
