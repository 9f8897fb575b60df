//! The JS half of the value tape (core's `codec::js::tape` has the layout and every rule):
//! a walk that V8 compiles, installed once per environment by `value.rs`, writing what each
//! JS value is into one reused `Buffer`. It reads a value the way the earlier Node-API walk
//! did (own enumerable string keys in `Object.keys` order, listed by `for…in` while
//! `Object.prototype` has no enumerable key, getters and proxies run, holes
//! told from `undefined`, ancestors compared for cycles) but at JIT speed: one call into JS
//! per value instead of one or more Node-API calls per item. It decides nothing about the
//! format: numbers go as their `f64`, bigints as their decimal text, strings as UTF-8 with a
//! mark when they hold lone surrogates, and it stops at what can never be cached, at
//! core's nesting limit, and past core's item cap (both handed in), so a cycle, a deep
//! value or a huge sparse array ends at once.

use polycache::codec::js::ahead::{AHEAD_LOOK, AHEAD_STEP, AHEAD_WORTH};
use polycache::codec::js::tape::{KEY_ROW, TAGS};
use polycache::codec::msgpack::MAX_DEPTH;

/// The walk's source; `$NAME` stands for core's tag of that name, `$MAX_DEPTH` for the
/// nesting limit. Evaluates to `encode(value, maxItems)`, which returns the tape as a
/// `Uint8Array` over the reused buffer (valid until the next call).
const WALK: &str = r#"(function () {
  'use strict'
  const maxDepth = $MAX_DEPTH
  const SMALL = 1 << 16
  // A buffer grown past this by one large value is not kept for the next call.
  const LARGEST_KEPT = 1 << 24
  // Thrown to end the walk once a stop tag is written (caught below, never escapes).
  const STOP = Symbol('stop')
  const typedArrayName = Object.getOwnPropertyDescriptor(
    Object.getPrototypeOf(Uint8Array.prototype), Symbol.toStringTag).get
  const objectPrototype = Object.prototype
  const getPrototypeOf = Object.getPrototypeOf
  const keysOf = Object.keys
  const isArray = Array.isArray
  const isView = ArrayBuffer.isView
  const atomicStore = Atomics.store
  const utf8 = typeof Buffer.prototype.utf8Write === 'function'
    ? (b, s, at) => b.utf8Write(s, at)
    : (b, s, at) => b.write(s, at)
  const wellFormed = typeof String.prototype.isWellFormed === 'function'
    ? (s) => s.isWellFormed()
    : () => true

  function writer () {
    let buf = Buffer.allocUnsafeSlow(SMALL)
    let view = new DataView(buf.buffer, buf.byteOffset, buf.length)
    // The buffers start their ArrayBuffer (offset 0), so tape offsets are memory alignment.
    let f64 = new Float64Array(buf.buffer, 0, buf.length >>> 3)
    let pos = 0
    let cap = 0
    let busy = false
    const ancestors = []
    // Read ahead (core's codec::js::ahead): from $AHEAD_LOOK bytes of tape on, between two
    // items of the root container, the walk projects the tape's size from the items left;
    // from $AHEAD_WORTH bytes it calls `ahead(buf, written)` (a native function: core
    // starts reading the tape on a helper thread) and from then on publishes in
    // `written`, every $AHEAD_STEP bytes and always between two root items, how far the
    // tape is written for good. Published bytes are never written again: a
    // tape that must grow stops publishing (the helper's buffer is kept until the next
    // walk; the JS thread reads the rest from the new one).
    const written = new Int32Array(Buffer.allocUnsafeSlow(4).buffer, 0, 1)
    const ROOT_IN = 128
    let ahead = null
    let mark = Infinity
    let started = false
    let retired = null

    function grow (n) {
      if (started) {
        retired = buf
        started = false
        mark = Infinity
      }
      let size = buf.length * 2
      while (size < pos + n) size *= 2
      const next = Buffer.allocUnsafeSlow(size)
      buf.copy(next, 0, 0, pos)
      buf = next
      view = new DataView(next.buffer, next.byteOffset, next.length)
      f64 = new Float64Array(next.buffer, 0, next.length >>> 3)
    }
    function tag (t) {
      if (pos + 1 > buf.length) grow(1)
      buf[pos++] = t
    }
    function stop (t) {
      tag(t)
      throw STOP
    }
    function head (t, n) {
      if (pos + 5 > buf.length) grow(5)
      buf[pos] = t
      view.setUint32(pos + 1, n, true)
      pos += 5
    }
    function string (s) {
      const n = s.length
      if (pos + 5 + 3 * n > buf.length) grow(5 + 3 * n)
      const start = pos + 5
      let end = start
      if (n < 48) {
        // Short ASCII (most keys and words): a byte per char beats a native call.
        let i = 0
        for (; i < n; i++) {
          const c = s.charCodeAt(i)
          if (c > 0x7f) break
          buf[end++] = c
        }
        if (i < n) end = start + utf8(buf, s, start)
      } else {
        end = start + utf8(buf, s, start)
      }
      const len = end - start
      // As many bytes as chars: all ASCII, so well-formed.
      buf[pos] = len === n || wellFormed(s) ? $STRING : $STRING_LONE
      view.setUint32(pos + 1, len, true)
      pos = end
    }
    // `typeof v === '…'` tests, not a `switch` on `typeof v`: V8 compiles each test inline
    // and the switch into a call of its Typeof builtin (4% of a 10 KB records set).
    function walk (v, depth) {
      if (typeof v === 'string') {
        string(v)
      } else if (typeof v === 'number') {
        if (pos + 9 > buf.length) grow(9)
        buf[pos] = $NUMBER
        view.setFloat64(pos + 1, v, true)
        pos += 9
      } else if (typeof v === 'object') {
        if (v === null) tag($NULL)
        else object(v, depth)
      } else if (typeof v === 'boolean') {
        tag(v ? $TRUE : $FALSE)
      } else if (typeof v === 'undefined') {
        tag($UNDEFINED)
      } else if (typeof v === 'bigint') {
        const text = String(v)
        head($BIGINT, text.length)
        if (pos + text.length > buf.length) grow(text.length)
        pos += buf.write(text, pos, 'latin1')
      } else if (typeof v === 'function') {
        stop($FUNCTION)
      } else if (typeof v === 'symbol') {
        stop($SYMBOL)
      } else {
        stop($UNKNOWN)
      }
    }
    function object (v, depth) {
      if (isView(v)) {
        const name = typedArrayName.call(v)
        if (name === 'Uint8Array') {
          const n = v.length
          head($BYTES, n)
          if (pos + n > buf.length) grow(n)
          buf.set(v, pos)
          pos += n
          return
        }
        // Another typed array; a DataView has no name and is not plain below.
        if (name !== undefined) stop($TYPED_OTHER)
      }
      if (depth >= maxDepth) stop($DEEP)
      for (let i = 0; i < depth; i++) if (ancestors[i] === v) stop($CYCLE)
      ancestors[depth] = v
      if (isArray(v)) array(v, depth + 1)
      else map(v, depth + 1)
      ancestors[depth] = undefined
    }
    function array (a, depth) {
      const n = a.length >>> 0
      head($ARRAY, n)
      if (n > cap) throw STOP
      let i = 0
      while (i < n) {
        const x = a[i]
        if (typeof x === 'number') {
          i = numbers(a, i, n, x, depth)
        } else {
          item(a, i, x, depth)
          i++
        }
        if (depth === 1 && pos >= mark) advance(i, n)
      }
    }
    // Between two items of the root container (`done` of `n` written), past `mark`:
    // publishes the tape so far, first starting the read ahead if the tape will be long.
    function advance (done, n) {
      mark = pos + $AHEAD_STEP
      // `written` holds an int32: past that, nothing more is published.
      if (pos > 0x7fffffff) {
        mark = Infinity
        return
      }
      if (!started) {
        if (ahead === null || pos / done * n < $AHEAD_WORTH) return
        const start = ahead
        ahead = null
        atomicStore(written, 0, pos)
        started = start(buf, written) === true
        if (!started) mark = Infinity
        return
      }
      atomicStore(written, 0, pos)
    }
    function item (a, i, x, depth) {
      if (x === undefined && !(i in a)) stop($HOLE)
      walk(x, depth)
    }
    // Items i, i + 1 … that are numbers, as one run: a tag, the count, then their f64s at
    // the next multiple of 8 (one aligned store each). Each item is read once: the first
    // that is not a number is written after the run. The index after what was written.
    function numbers (a, i, n, x, depth) {
      const most = 12 + 8 * (n - i)
      if (pos + most > buf.length) grow(most)
      const at = pos
      let slot = (pos + 12) >>> 3
      f64[slot++] = x
      let j = i + 1
      let y
      for (; j < n; j++) {
        y = a[j]
        if (typeof y !== 'number') break
        f64[slot++] = y
      }
      buf[at] = $NUMBERS
      view.setUint32(at + 1, j - i, true)
      pos = slot << 3
      if (j === n) return n
      item(a, j, y, depth)
      return j + 1
    }
    function map (o, depth) {
      const proto = getPrototypeOf(o)
      if (proto !== objectPrototype && proto !== null) stop($NOT_PLAIN)
      if (plainIn && depth > 1) {
        mapIn(o, depth)
        return
      }
      // The root's count is written before its entries, so that its head is final once
      // published (read ahead).
      const keys = keysOf(o)
      const n = keys.length
      head($MAP, n)
      if (n > cap) throw STOP
      if (plainIn && n <= ROOT_IN) {
        entriesIn(o, depth, n)
        return
      }
      const row = keyRow(depth - 1)
      for (let i = 0; i < n; i++) {
        const k = keys[i]
        key(row, i, k)
        walk(o[k], depth)
        if (depth === 1 && pos >= mark) advance(i + 1, n)
      }
    }
    // By object depth, the last key written at each position below $KEY_ROW, as core
    // remembers them: a key equal to it is written as $KEY_AGAIN (one byte, nothing for
    // core to check again), so a list of records writes its keys once.
    let keyRows = []
    function keyRow (depth) {
      let row = keyRows[depth]
      if (row === undefined) {
        row = []
        keyRows[depth] = row
      }
      return row
    }
    function key (row, i, k) {
      if (i < $KEY_ROW) {
        if (row[i] === k) {
          tag($KEY_AGAIN)
          return
        }
        row[i] = k
      }
      string(k)
    }

    // A plain object's keys by `for…in`: V8 lists them from the object's map without
    // making an array and turns `o[k]` into a field load there (Object.keys allocated one
    // array per object and `o[k]` was a megamorphic lookup). Only while Object.prototype
    // has no enumerable key, so the loop lists exactly what Object.keys lists. The count is
    // written after the keys; until then it reads as the cap, so a stop tag met inside is
    // what core reports.
    function mapIn (o, depth) {
      head($MAP, cap)
      entriesIn(o, depth, -1)
    }
    // The entries of `o`, whose head was just written with `n` (or -1 when not counted),
    // by `for…in`. A root object of at most ROOT_IN keys comes here counted (most likely
    // in fast mode, where `o[k]` in `for…in` is a field load and a keyed load from
    // `Object.keys` costs about 50 ns a key; larger ones are in dictionary mode, where
    // `for…in` costs more than `Object.keys`). The count becomes what was walked if it
    // differs: a getter changed the keys (core then reads the tape again on one thread if
    // it had read it ahead).
    function entriesIn (o, depth, n) {
      const at = pos - 5
      const row = keyRow(depth - 1)
      let i = 0
      for (const k in o) {
        if (i === cap) {
          // Over the cap: core's refusal names the count.
          view.setUint32(at + 1, keysOf(o).length, true)
          throw STOP
        }
        key(row, i++, k)
        walk(o[k], depth)
        if (depth === 1 && pos >= mark) advance(i, n)
      }
      if (i !== n) view.setUint32(at + 1, i, true)
    }
    // Whether Object.prototype has an enumerable key (then `for…in` would list it too).
    function prototypeClean () {
      for (const _ in objectPrototype) return false
      return true
    }
    let plainIn = true

    return function encode (value, maxItems, start) {
      // A getter that caches a value while this walk runs gets a walk of its own.
      if (busy) return writer()(value, maxItems, start)
      busy = true
      retired = null
      ahead = typeof start === 'function' ? start : null
      mark = ahead === null ? Infinity : $AHEAD_LOOK
      if (buf.length > LARGEST_KEPT) {
        buf = Buffer.allocUnsafeSlow(SMALL)
        view = new DataView(buf.buffer, buf.byteOffset, buf.length)
        f64 = new Float64Array(buf.buffer, 0, buf.length >>> 3)
      }
      pos = 0
      cap = maxItems
      plainIn = prototypeClean()
      keyRows = []
      try {
        walk(value, 0)
      } catch (e) {
        ancestors.length = 0
        if (e !== STOP) throw e
      } finally {
        busy = false
        ahead = null
        started = false
        mark = Infinity
      }
      return new Uint8Array(buf.buffer, buf.byteOffset, pos)
    }
  }
  return writer()
})()"#;

/// The walk's source with core's tags and nesting limit in place.
pub(crate) fn walk_source() -> String {
    // Longest names first, so `$STRING` does not eat into `$STRING_LONE`.
    let mut tags = TAGS;
    tags.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut source = WALK
        .replace("$MAX_DEPTH", &MAX_DEPTH.to_string())
        .replace("$KEY_ROW", &KEY_ROW.to_string())
        .replace("$AHEAD_LOOK", &AHEAD_LOOK.to_string())
        .replace("$AHEAD_WORTH", &AHEAD_WORTH.to_string())
        .replace("$AHEAD_STEP", &AHEAD_STEP.to_string());
    for (name, tag) in tags {
        source = source.replace(&format!("${name}"), &tag.to_string());
    }
    source
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_replaced() {
        let source = walk_source();
        assert!(!source.contains('$'), "{source}");
        assert!(source.contains("const maxDepth = 256"));
    }
}
