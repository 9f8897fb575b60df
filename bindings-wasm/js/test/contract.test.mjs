// The JS edge package against tests/vectors/contract.json: pkg/polycache.d.ts (generated
// by wasm-bindgen) declares every contract function and the Ring with the described
// parameter names, order and types, and each one called with the description's example
// gives its result. The checker is shared with the Node package's test.
import test from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { checkDts, checkExamples } from '../../../tests/vectors/contract.mjs'
import { pc } from './helpers.mjs'

test('polycache.d.ts declares the contract as contract.json describes it', () => {
  assert.deepEqual(checkDts(readFileSync(new URL('../pkg/polycache.d.ts', import.meta.url), 'utf8')), [])
})

test('every contract function gives its example result', () => {
  checkExamples(pc)
})
