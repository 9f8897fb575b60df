'use strict'
// Python and Node on one Redis: a value written by one is read by the other, and a
// Python `@cache.cached(key=...)` function shares its entries with Node's `cache.wrap`.
// Uses the interpreter in POLYCACHE_PYTHON (`make test` passes the venv where
// `pip install ./bindings-python` went), else python3 with bindings-python/python on its
// path. With POLYCACHE_PYTHON set the binding must import there, or the test fails; only
// without it does a missing Python binding report a skip that says why.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { Cache } = require('..')
const { redis, root, uniqueNamespace } = require('./helpers')

const interpreter = process.env.POLYCACHE_PYTHON
const pythonPath = interpreter ? {} : { PYTHONPATH: path.join(root, 'bindings-python', 'python') }
function python(code, env = {}) {
  return execFileSync(interpreter || 'python3', ['-c', code], {
    env: { ...process.env, ...pythonPath, ...env },
    encoding: 'utf8',
  }).trim()
}
let unavailable = null
if (!interpreter) {
  try {
    python('import polycache')
  } catch (err) {
    unavailable = `POLYCACHE_PYTHON is unset and python3 has no Python binding (${String(err.message).split('\n')[0]})`
  }
}

test('Python <-> Node on one Redis', { skip: unavailable ?? false }, async () => {
  // A chosen interpreter that cannot import the binding is a broken setup, not a skip.
  assert.doesNotThrow(() => python('import polycache'), `import polycache with POLYCACHE_PYTHON=${interpreter}`)
  const url = (await redis()).standalone
  const namespace = uniqueNamespace('interop')
  const cache = await Cache.connect(url, { namespace })
  const env = { PC_URL: url, PC_NS: namespace }

  python(`
import os, polycache
c = polycache.Cache(os.environ["PC_URL"], namespace=os.environ["PC_NS"])
c.set("from-python", {"id": 42, "name": "Ada", "score": 98.5, "tags": ["a", "b"], "blob": b"\\x00\\xff", "big": 2**64 - 1, "none": None})
`, env)
  assert.deepEqual(await cache.get('from-python'), {
    id: 42, name: 'Ada', score: 98.5, tags: ['a', 'b'], blob: Buffer.from([0, 255]), big: 2n ** 64n - 1n, none: null,
  })

  await cache.set('from-node', { id: 7, ratio: 0.25, bytes: Buffer.from('hi'), nested: [1, [2, { x: null }]] })
  const seen = python(`
import os, polycache
c = polycache.Cache(os.environ["PC_URL"], namespace=os.environ["PC_NS"])
print(repr(c.get("from-node")))
`, env)
  // The dict comes back in the object's insertion order (docs/FORMAT.md §2).
  assert.equal(seen, "{'id': 7, 'ratio': 0.25, 'bytes': b'hi', 'nested': [1, [2, {'x': None}]]}")

  const node = cache.wrap(async (id) => ({ by: 'node', id }), { key: 'user:{0}' })
  assert.deepEqual(await node(1), { by: 'node', id: 1 })
  const fromPython = python(`
import os, polycache
c = polycache.Cache(os.environ["PC_URL"], namespace=os.environ["PC_NS"])
@c.cached(key="user:{0}")
def user(id):
    return {"by": "python", "id": id}
print(user(1)["by"], user(2)["by"])
`, env)
  assert.equal(fromPython, 'node python', 'Python reads the entry Node wrote, and fills the one it lacks')
  assert.deepEqual(await node(2), { by: 'python', id: 2 }, 'Node reads the entry Python wrote')
})
