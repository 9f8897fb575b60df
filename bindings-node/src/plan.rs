//! The JS half of a read's plan (core's `codec::js::plan` has the layout and every rule): a
//! loop V8 compiles, installed once per environment by `value.rs`, that makes the value a
//! plan describes. It decides nothing about the value (every rule was applied by core):
//! scalars are pushed as the plan names them, arrays and objects take the values on top of
//! the stack. What it chooses is only how V8 builds an object. Objects of a shape (maps that share
//! their keys, as records do) are made by a constructor compiled from the shape's keys once
//! the shape has been met a few times (`{"id": s[i], "name": s[i + 1], …}`: V8 allocates
//! such an object whole, with no per-key lookup); until then, and where code cannot be
//! generated from strings, key by key. Compiled constructors are kept across reads, at most
//! `KEPT` of them, by the id core gives each set of keys (an id names one set of keys for
//! the life of the process, so a kept one is always right; the keys are read from the plan
//! only for an id not kept). A map of `DICTIONARY` keys or more is built in dictionary mode, as
//! `JSON.parse` builds it.

use polycache::codec::js::plan::{NO_ID, OPS};

/// The loop's source; `$NAME` stands for core's instruction of that name. Evaluates to
/// `make(plan, len)`, which returns the value the first `len` bytes of the plan (a `Buffer`)
/// describe. `make.scratch` is a `Buffer` of `SCRATCH` bytes the addon copies small plans
/// into, so a small read allocates no `Buffer` (and no float view) of its own.
const LOOP: &str = r#"(function () {
  'use strict'
  // Uses of a shape before its constructor is compiled, and most shapes kept (the least
  // recently used go first).
  const COMPILE_AFTER = 2
  const KEPT = 1024
  const SCRATCH = $SCRATCH
  const NO_ID = $NO_ID
  const scratch = Buffer.allocUnsafeSlow(SCRATCH)
  const scratchF64 = new Float64Array(scratch.buffer, 0, SCRATCH >>> 3)
  const fcc = String.fromCharCode
  // Builtins the loop calls with its buffers, bound now: a method patched later onto
  // Buffer.prototype or Array.prototype never sees the scratch or the stack.
  const bindCall = (f) => Function.prototype.call.bind(f)
  const latin1Slice = bindCall(Buffer.prototype.latin1Slice)
  const utf8Slice = bindCall(Buffer.prototype.utf8Slice)
  const slice = bindCall(Array.prototype.slice)
  const defineProperty = Object.defineProperty
  const objectPrototype = Object.prototype
  const namesOf = Object.getOwnPropertyNames
  const isExtensible = Object.isExtensible
  const shapes = new Map()

  // Every property is an own property, as JSON.parse and an object literal make it: a key
  // that Object.prototype has is defined, not assigned, so no setter runs and a frozen
  // prototype refuses nothing. Assigning is the same (and cheaper) while Object.prototype
  // holds only writable data properties besides "__proto__": checked here, and for each
  // read whether it was frozen or given a property since (`careful` then checks each key).
  const protoNames = namesOf(objectPrototype)
  const plainProto = protoNames.every((k) => {
    const d = Object.getOwnPropertyDescriptor(objectPrototype, k)
    return k === '__proto__' || (d.writable === true && !d.get && !d.set)
  })
  // Whether this read checked Object.prototype yet, and what it found: only a read that
  // makes an object key by key looks (most reads of records use shapes, scalars none).
  let checked = false
  let careful = true
  function own (o, k, v) {
    if (!checked) {
      checked = true
      careful = !plainProto || !isExtensible(objectPrototype) ||
        namesOf(objectPrototype).length !== protoNames.length
    }
    if (k === '__proto__' || (careful && k in objectPrototype)) {
      defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true })
    } else {
      o[k] = v
    }
  }
  function keyByKeyObject (keys, s, i) {
    const o = {}
    for (let j = 0; j < keys.length; j++) own(o, keys[j], s[i + j])
    return o
  }
  // An object of DICTIONARY keys or more, as JSON.parse makes it: in dictionary mode. Built
  // on a null prototype (V8 makes such an object a dictionary at once, where adding keys one
  // by one to {} walks a map transition per key: 39 against 216 µs for 1,000 keys, JSON.parse
  // 160), then given Object.prototype. With no prototype, every key ("__proto__" too) is
  // an own data property and no setter can run.
  const DICTIONARY = 128
  const create = Object.create
  const setPrototypeOf = Object.setPrototypeOf
  function dictionary (keys, s, i) {
    const o = create(null)
    for (let j = 0; j < keys.length; j++) o[keys[j]] = s[i + j]
    setPrototypeOf(o, objectPrototype)
    return o
  }
  function keyByKey (keys) {
    const n = keys.length
    return function (s, i) {
      const o = {}
      for (let j = 0; j < n; j++) own(o, keys[j], s[i + j])
      return o
    }
  }
  function compile (keys) {
    let body = 'return {'
    for (let j = 0; j < keys.length; j++) body += JSON.stringify(keys[j]) + ': s[i + ' + j + '],'
    try {
      return new Function('s', 'i', body + '}')
    } catch (_) {
      return null // code generation from strings is disallowed here
    }
  }
  // The keys `n` of a shape, written at `buf[start..end]` (`u32` length + UTF-8 each).
  function keysAt (buf, start, n) {
    const out = new Array(n)
    let p = start
    for (let j = 0; j < n; j++) {
      const m = (buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24)) >>> 0
      out[j] = utf8Slice(buf, p + 4, p + 4 + m)
      p += 4 + m
    }
    return out
  }
  // When each shape was used last, by a counter: cheaper than keeping the Map in order of
  // use on every read. A full table forgets its least recently used half at once, so a
  // value of many small key sets costs one sort per KEPT / 2 new shapes, not a scan each.
  let clock = 0
  function forgetLeastUsed () {
    const used = []
    for (const entry of shapes.values()) used.push(entry.used)
    used.sort((a, b) => a - b)
    const cut = used[used.length >>> 1]
    for (const [sig, entry] of shapes) if (entry.used < cut) shapes.delete(sig)
  }
  // The constructor of the shape whose keys are `buf[start..end]`, found by those bytes
  // as a Latin-1 string.
  function shape (id, buf, start, n) {
    let entry = id === NO_ID ? undefined : shapes.get(id)
    if (entry === undefined) {
      if (shapes.size >= KEPT) forgetLeastUsed()
      const keys = keysAt(buf, start, n)
      entry = { keys, uses: 0, make: keyByKey(keys), n, compiled: false, used: 0 }
      if (id !== NO_ID) shapes.set(id, entry)
    }
    entry.used = ++clock
    if (!entry.compiled && ++entry.uses > COMPILE_AFTER) {
      entry.compiled = true
      entry.make = compile(entry.keys) || entry.make
    }
    return entry
  }
  function ascii (buf, p, n) {
    switch (n) {
      case 0: return ''
      case 1: return fcc(buf[p])
      case 2: return fcc(buf[p], buf[p + 1])
      case 3: return fcc(buf[p], buf[p + 1], buf[p + 2])
      case 4: return fcc(buf[p], buf[p + 1], buf[p + 2], buf[p + 3])
      case 5: return fcc(buf[p], buf[p + 1], buf[p + 2], buf[p + 3], buf[p + 4])
      case 6: return fcc(buf[p], buf[p + 1], buf[p + 2], buf[p + 3], buf[p + 4], buf[p + 5])
      case 7: return fcc(buf[p], buf[p + 1], buf[p + 2], buf[p + 3], buf[p + 4], buf[p + 5], buf[p + 6])
      case 8: return fcc(buf[p], buf[p + 1], buf[p + 2], buf[p + 3], buf[p + 4], buf[p + 5], buf[p + 6], buf[p + 7])
      default: return latin1Slice(buf, p, p + n)
    }
  }

  function make (buf, len) {
    checked = false
    // The floats' offsets assume alignment; a view is made for the first float.
    let f64 = buf === scratch ? scratchF64 : null
    // The value stack: `st[0..sp]` (items past `sp` are stale; the array dies with the call).
    const st = []
    let sp = 0
    const made = []
    let p = 0
    function u32 () {
      const n = (buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24)) >>> 0
      p += 4
      return n
    }
    while (p < len) {
      switch (buf[p++]) {
        case $NULL: st[sp++] = null; break
        case $TRUE: st[sp++] = true; break
        case $FALSE: st[sp++] = false; break
        case $INT:
          st[sp++] = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24)
          p += 4
          break
        case $FLOAT:
          if (f64 === null) {
            if (buf.byteOffset & 7) buf = Buffer.from(buf)
            f64 = new Float64Array(buf.buffer, buf.byteOffset, buf.length >>> 3)
          }
          p = (p + 7) & ~7
          st[sp++] = f64[p >>> 3]
          p += 8
          break
        case $ASCII: {
          const n = buf[p++]
          st[sp++] = ascii(buf, p, n)
          p += n
          break
        }
        case $ASCII_LONG: {
          const n = u32()
          st[sp++] = latin1Slice(buf, p, p + n)
          p += n
          break
        }
        case $UTF8: {
          const n = u32()
          st[sp++] = utf8Slice(buf, p, p + n)
          p += n
          break
        }
        case $ARRAY: {
          const n = u32()
          const items = slice(st, sp - n, sp)
          sp -= n
          st[sp++] = items
          break
        }
        case $SHAPE: {
          const id = u32() + u32() * 4294967296
          const n = u32()
          const start = p
          for (let j = 0; j < n; j++) { const m = u32(); p += m }
          made.push(shape(id, buf, start, n))
          break
        }
        case $SHAPED: {
          const entry = made[u32()]
          sp -= entry.n
          st[sp] = entry.make(st, sp)
          sp++
          break
        }
        case $OBJECT: {
          const n = u32()
          const names = keysAt(buf, p, n)
          for (let j = 0; j < n; j++) { const m = u32(); p += m }
          sp -= n
          st[sp] = n < DICTIONARY ? keyByKeyObject(names, st, sp) : dictionary(names, st, sp)
          sp++
          break
        }
        default:
          throw new Error('polycache: unknown plan instruction ' + buf[p - 1])
      }
    }
    return st[0]
  }
  make.scratch = scratch
  return make
})()"#;

/// The size of the loop's scratch `Buffer`: plans up to this size are copied into it.
pub(crate) const SCRATCH: usize = 1 << 16;

/// The loop's source with core's instruction numbers in place.
pub(crate) fn loop_source() -> String {
    // Longest names first, so `$ASCII` does not eat into `$ASCII_LONG`.
    let mut ops = OPS;
    ops.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut source = LOOP
        .replace("$SCRATCH", &SCRATCH.to_string())
        .replace("$NO_ID", &NO_ID.to_string());
    for (name, op) in ops {
        source = source.replace(&format!("${name}"), &op.to_string());
    }
    source
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_replaced() {
        let source = loop_source();
        assert!(!source.contains('$'), "{source}");
        assert!(source.contains("case 10: {"));
    }
}
