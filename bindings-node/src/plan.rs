//! The JS half of a read's plan (core's `codec::js::plan` has the layout and every rule): a
//! loop V8 compiles, installed once per environment by `value.rs`, that makes the value a
//! plan describes. It decides nothing: scalars are pushed as the plan names them, arrays
//! and objects take the values on top of the stack. Objects of a shape (maps that share
//! their keys, as records do) are made by a constructor compiled from the shape's keys once
//! the shape has been met a few times (`{"id": s[i], "name": s[i + 1], …}`: V8 allocates
//! such an object whole, with no per-key lookup); until then, and where code cannot be
//! generated from strings, key by key. Compiled constructors are kept across reads, at most
//! `KEPT` of them.

use polycache::codec::js::plan::OPS;

/// The loop's source; `$NAME` stands for core's instruction of that name. Evaluates to
/// `make(plan)`, which returns the value the plan (a `Buffer`) describes.
const LOOP: &str = r#"(function () {
  'use strict'
  // Uses of a shape before its constructor is compiled, and most shapes kept (the least
  // recently used goes first).
  const COMPILE_AFTER = 2
  const KEPT = 1024
  const fcc = String.fromCharCode
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
  let careful = true
  function own (o, k, v) {
    if (k === '__proto__' || (careful && k in objectPrototype)) {
      defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true })
    } else {
      o[k] = v
    }
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
      out[j] = buf.utf8Slice(p + 4, p + 4 + m)
      p += 4 + m
    }
    return out
  }
  // The constructor of the shape whose keys are `buf[start..end]`, found by those bytes
  // as a Latin-1 string.
  function shape (buf, start, end, n) {
    const sig = buf.latin1Slice(start, end)
    let entry = shapes.get(sig)
    if (entry === undefined) {
      if (shapes.size >= KEPT) shapes.delete(shapes.keys().next().value)
      const keys = keysAt(buf, start, n)
      entry = { keys, uses: 0, make: keyByKey(keys), n, compiled: false }
    } else {
      shapes.delete(sig) // re-inserted below: the Map's order is the order of use
    }
    shapes.set(sig, entry)
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
      default: return buf.latin1Slice(p, p + n)
    }
  }

  return function make (buf) {
    careful = !plainProto || !isExtensible(objectPrototype) ||
      namesOf(objectPrototype).length !== protoNames.length
    if (buf.byteOffset & 7) buf = Buffer.from(buf) // the floats' offsets assume alignment
    const f64 = new Float64Array(buf.buffer, buf.byteOffset, buf.length >>> 3)
    const len = buf.length
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
          st[sp++] = buf.latin1Slice(p, p + n)
          p += n
          break
        }
        case $UTF8: {
          const n = u32()
          st[sp++] = buf.utf8Slice(p, p + n)
          p += n
          break
        }
        case $ARRAY: {
          const n = u32()
          const items = st.slice(sp - n, sp)
          sp -= n
          st[sp++] = items
          break
        }
        case $SHAPE: {
          const n = u32()
          const start = p
          for (let j = 0; j < n; j++) { const m = u32(); p += m }
          made.push(shape(buf, start, p, n))
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
          const o = {}
          for (let j = 0; j < n; j++) own(o, names[j], st[sp + j])
          st[sp++] = o
          break
        }
        default:
          throw new Error('polycache: unknown plan instruction ' + buf[p - 1])
      }
    }
    return st[0]
  }
})()"#;

/// The loop's source with core's instruction numbers in place.
pub(crate) fn loop_source() -> String {
    // Longest names first, so `$ASCII` does not eat into `$ASCII_LONG`.
    let mut ops = OPS;
    ops.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut source = LOOP.to_owned();
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
