'use strict'
// The hand-written part of index.d.ts (src/header.d.ts) must not drift from core: every
// field of core's Config is in CacheOptions, and nothing else but loader, writer and io.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { defaultOptions } = require('..')

test('CacheOptions in index.d.ts lists exactly the Config fields plus loader, writer, io', () => {
  const dts = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8')
  const body = dts.match(/export interface CacheOptions \{([\s\S]*?)\n\}/)[1]
  const declared = [...body.matchAll(/^ {2}(\w+)\?:/gm)].map((m) => m[1]).sort()
  const expected = [...Object.keys(defaultOptions()), 'loader', 'writer', 'io'].sort()
  assert.deepEqual(declared, expected)
})

test('defaultOptions() are core defaults', () => {
  const d = defaultOptions()
  assert.equal(d.url, 'memory://')
  assert.equal(d.ttl, 300)
  assert.equal(d.codec, 'msgpack')
})
