'use strict'
// The README's Node examples run as written and print what their comments say.
//
// An example is a fenced ```js block right after an `<!-- example: NAME -->` comment;
// `<!-- example: NAME, redis -->` also runs it on the harness's standalone Redis (its
// 'memory://' replaced by the server's URL, its namespace made unique). A `console.log(...)`
// line with a trailing comment (`console.log(x) // 1 1 1`) must print that comment's text.
// Each example runs as its own ES module in a directory whose node_modules/polycache is
// this package, so `import { Cache } from 'polycache'` works as it does in an app. The
// Python examples are checked by bindings-python/tests/test_readme.py the same way.
const test = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { promisify } = require('node:util')
const { redis, root } = require('./helpers')

const EXAMPLE = /^<!-- example: ([\w-]+)(, redis)? -->\n```(\w+)\n(.*?)^```$/gms
// `console.log(...) // expected output` at the start of a line.
const LOG = /^console\.log\(.*\)\s+\/\/ (.*)$/
// The examples this suite must find: a lost marker fails here, not silently.
const EXPECTED = ['quickstart', 'freshness']

function examples (language, text) {
  const found = new Map()
  for (const [, name, redis, lang, code] of text.matchAll(EXAMPLE)) {
    if (lang !== language) continue
    assert.ok(!found.has(name), `two ${language} examples named ${name}`)
    found.set(name, { name, code, onRedis: Boolean(redis) })
  }
  return found
}

/** Per top-level console.log, the line it must print (null: not stated). */
function expectedOutput (code) {
  return code.split('\n')
    .filter((line) => line.startsWith('console.log('))
    .map((line) => { const m = LOG.exec(line); return m ? m[1].trim() : null })
}

/** A directory where `import 'polycache'` resolves to this package. */
function app () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polycache-readme-'))
  fs.mkdirSync(path.join(dir, 'node_modules'))
  fs.symlinkSync(path.resolve(__dirname, '..'), path.join(dir, 'node_modules', 'polycache'), 'dir')
  return dir
}

async function run (example, code) {
  const dir = app()
  try {
    const script = path.join(dir, `readme_${example.name}.mjs`)
    fs.writeFileSync(script, code)
    let stdout
    try {
      ({ stdout } = await promisify(execFile)(process.execPath, [script], { cwd: dir, timeout: 120000 }))
    } catch (err) {
      assert.fail(`README example ${example.name} failed:\n${err.stderr || err}`)
    }
    const printed = stdout.split('\n').filter((line, i, all) => i < all.length - 1 || line !== '')
    const want = expectedOutput(code)
    assert.equal(printed.length, want.length,
      `README example ${example.name}: ${want.length} console.log lines, printed ${JSON.stringify(printed)}`)
    want.forEach((line, i) => {
      if (line !== null) assert.equal(printed[i], line, `README example ${example.name} printed ${printed[i]}, says ${line}`)
    })
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** The example pointed at `url`, in a namespace of its own. */
function onRedis (code, url) {
  assert.equal(code.split("'memory://'").length, 2, 'a Redis example names memory:// once')
  code = code.replace("'memory://'", `'${url}'`)
  const suffix = Math.random().toString(16).slice(2, 10)
  let renamed = 0
  code = code.replace(/namespace: '([\w-]+)'/g, (_, name) => { renamed += 1; return `namespace: '${name}-${suffix}'` })
  assert.equal(renamed, 1, 'a Redis example sets its namespace once')
  return code
}

const found = examples('js', fs.readFileSync(path.join(root, 'README.md'), 'utf8'))

test('the README marks its Node examples', () => {
  for (const name of EXPECTED) assert.ok(found.has(name), `marked Node examples: ${[...found.keys()]}`)
})

for (const example of found.values()) {
  test(`README example ${example.name} runs on memory://`, async () => {
    await run(example, example.code)
  })
  if (example.onRedis) {
    test(`README example ${example.name} runs on Redis`, async () => {
      const endpoints = await redis()
      await run(example, onRedis(example.code, endpoints.standalone))
    })
  }
}
