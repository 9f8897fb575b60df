// The JS side of tests/vectors/contract.json, shared by the Node package's and the JS edge
// package's contract tests: reads a generated .d.ts and checks every described function and
// class (names in camelCase, parameter names, order, optionality and types, result types),
// then calls each one with the description's example.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'

export const doc = JSON.parse(readFileSync(new URL('./contract.json', import.meta.url), 'utf8'))

export const camel = (name) => name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())
export const className = (name) => camel(name).replace(/^./, (c) => c.toUpperCase())

/** A TS type without spaces, `Array<T>` written `T[]`, and `T | undefined` as `T`. */
function normal(type) {
  let t = type.replace(/\s+/g, '').replace(/\|undefined$/, '')
  for (;;) {
    const next = t.replace(/Array<([A-Za-z]+)>/g, '$1[]')
    if (next === t) return t
    t = next
  }
}

/** Splits `a: X, b?: Y<Z, W>` at top-level commas into { name, optional, type }. */
function params(text) {
  const out = []
  let depth = 0
  let start = 0
  const parts = []
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if ('<[({'.includes(c)) depth++
    else if ('>])}'.includes(c)) depth--
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i))
      start = i + 1
    }
  }
  if (text.slice(start).trim()) parts.push(text.slice(start))
  for (const part of parts) {
    const m = /^\s*(\w+)(\?)?\s*:\s*([\s\S]+)$/.exec(part)
    assert.ok(m, `unreadable parameter ${part}`)
    out.push({ name: m[1], optional: Boolean(m[2]), type: normal(m[3]) })
  }
  return out
}

/** Functions, classes and interfaces declared in a .d.ts. */
export function parseDts(text) {
  const src = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '')
  const functions = new Map()
  for (const m of src.matchAll(/export (?:declare )?function (\w+)\(([^)]*)\):\s*([^;\n]+)/g)) {
    functions.set(m[1], { params: params(m[2]), result: normal(m[3]) })
  }
  const classes = new Map()
  for (const m of src.matchAll(/export (?:declare )?class (\w+) \{([\s\S]*?)\n\}/g)) {
    const members = new Map()
    for (const line of m[2].split('\n')) {
      // napi writes `get size(): number`, wasm-bindgen `readonly size: number`.
      const getter = /^\s*(?:get (\w+)\(\)|readonly (\w+)):\s*([^;]+)/.exec(line)
      const method = /^\s*(?:static )?(\w+)\(([^)]*)\)(?::\s*([^;]+))?/.exec(line)
      if (getter) members.set(`get ${getter[1] ?? getter[2]}`, { params: [], result: normal(getter[3]) })
      else if (method) members.set(method[1], { params: params(method[2]), result: method[3] && normal(method[3]) })
    }
    classes.set(m[1], members)
  }
  const interfaces = new Map()
  for (const m of src.matchAll(/export interface (\w+) \{([\s\S]*?)\n\}/g)) {
    const fields = new Map()
    for (const f of m[2].matchAll(/^\s*(\w+)\??:\s*([^;\n]+)/gm)) fields.set(f[1], normal(f[2]))
    interfaces.set(m[1], fields)
  }
  return { functions, classes, interfaces }
}

const spellings = (type) => doc.types[type].ts.map(normal)

/** Every mismatch between one described parameter list / result and a declaration. */
function compare(what, described, declared, dts, problems) {
  const want = described.params.map((p) => camel(p.name))
  const got = declared.params.map((p) => p.name)
  if (JSON.stringify(want) !== JSON.stringify(got)) problems.push(`${what}: parameters ${got}, described ${want}`)
  described.params.forEach((p, i) => {
    const d = declared.params[i]
    if (!d) return
    if (!spellings(p.type).includes(d.type)) problems.push(`${what}: ${d.name} is ${d.type}, described ${spellings(p.type)}`)
    if (Boolean(p.optional) !== d.optional) problems.push(`${what}: ${d.name} optional is ${d.optional}`)
    checkRecord(what, p.type, d.type, dts, problems)
  })
  if (described.result !== undefined && !spellings(described.result).includes(declared.result)) {
    problems.push(`${what}: returns ${declared.result}, described ${spellings(described.result)}`)
  }
  if (described.result !== undefined) checkRecord(what, described.result, declared.result, dts, problems)
}

/** A record type's interface: the described fields, camelCase, with their types. */
function checkRecord(what, type, declared, dts, problems) {
  const fields = doc.records[type]
  if (!fields) return
  const fieldsOf = dts.interfaces.get(declared.replace(/\[\]$/, ''))
  if (!fieldsOf) return problems.push(`${what}: interface ${declared} is not declared`)
  const want = fields.map((f) => camel(f.name))
  const got = [...fieldsOf.keys()]
  if (JSON.stringify([...want].sort()) !== JSON.stringify([...got].sort())) {
    problems.push(`${what}: ${declared} has fields ${got}, described ${want}`)
  }
  for (const f of fields) {
    const t = fieldsOf.get(camel(f.name))
    if (t !== undefined && t !== normal(doc.field_types[f.type].ts)) {
      problems.push(`${what}: ${declared}.${camel(f.name)} is ${t}, described ${doc.field_types[f.type].ts}`)
    }
  }
}

/** The problems found checking a .d.ts against the description (empty when it matches). */
export function checkDts(text) {
  const dts = parseDts(text)
  const problems = []
  for (const f of doc.functions) {
    const name = camel(f.name)
    const declared = dts.functions.get(name)
    if (!declared) problems.push(`function ${name} is not declared`)
    else compare(name, f, declared, dts, problems)
  }
  for (const c of doc.classes) {
    const name = className(c.name)
    const members = dts.classes.get(name)
    if (!members) {
      problems.push(`class ${name} is not declared`)
      continue
    }
    for (const m of c.methods) {
      const key = { constructor: 'constructor', length: 'get size' }[m.kind] ?? camel(m.name)
      const declared = members.get(key)
      if (!declared) problems.push(`${name}.${key} is not declared`)
      else compare(`${name}.${key}`, m, declared, dts, problems)
    }
  }
  return problems
}

/** A described example argument as JS passes it. */
function argument(type, v) {
  if (type === 'bytes') return Uint8Array.from(Buffer.from(v.hex, 'hex'))
  if (type === 'envelope_options' || type === 'envelope') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [camel(k), x]))
  }
  return v
}

/** A result in the description's JSON form, after checking its JS type. */
function plain(type, v) {
  const ts = doc.types[type].ts[0]
  if (ts === 'string') assert.equal(typeof v, 'string', type)
  else if (ts === 'number') assert.equal(typeof v, 'number', type)
  else if (type === 'bytes') assert.ok(v instanceof Uint8Array, type)
  else if (ts.endsWith('[]') || ts.startsWith('Array<')) assert.ok(Array.isArray(v), type)
  if (type === 'bytes') return { hex: Buffer.from(v).toString('hex') }
  if (type === 'envelope') {
    return Object.fromEntries(
      doc.records.envelope.map((f) => [f.name, v[camel(f.name)] === undefined ? null : v[camel(f.name)]]),
    )
  }
  return v
}

const call = (fn, described, args, self) =>
  fn.apply(self, described.params.map((p, i) => argument(p.type, args[i])))

/** Calls every described function and class member of `pc` with its example. */
export function checkExamples(pc) {
  for (const f of doc.functions) {
    const fn = pc[camel(f.name)]
    assert.equal(typeof fn, 'function', camel(f.name))
    assert.deepEqual(plain(f.result, call(fn, f, f.example.args)), f.example.result, camel(f.name))
  }
  for (const c of doc.classes) {
    const Class = pc[className(c.name)]
    const ctor = c.methods.find((m) => m.kind === 'constructor')
    const instance = new Class(...ctor.params.map((p, i) => argument(p.type, c.example_args[i])))
    for (const m of c.methods) {
      if (m.kind === 'constructor') continue
      const got = m.kind === 'length' ? instance.size : call(instance[camel(m.name)], m, m.example.args, instance)
      assert.deepEqual(plain(m.result, got), m.example.result, `${className(c.name)}.${camel(m.name)}`)
    }
  }
}
