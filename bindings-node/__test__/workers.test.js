'use strict'
// Worker threads that load the addon one after another: each new thread registers the
// module again after the previous thread (and its allocator state) is gone. mimalloc v3
// crashed there (SIGSEGV in its thread init, reached from the module's registration), so
// the addon builds mimalloc v2. A child process runs the workers: a crash ends it, not the
// test runner.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const script = `
const { Worker } = require('node:worker_threads')
const source = \`
  const { workerData, parentPort } = require('node:worker_threads')
  const { Cache } = require(workerData)
  const cache = new Cache({ url: 'memory://' })
  cache.set('k', { n: 1 }).then(() => cache.get('k')).then((v) => parentPort.postMessage(v.n))
\`
;(async () => {
  for (let i = 0; i < 4; i++) {
    const worker = new Worker(source, { eval: true, workerData: process.argv[1] })
    const got = await new Promise((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
    })
    const code = await new Promise((resolve) => worker.once('exit', resolve))
    console.log(i, got, code)
  }
})()
`

test('workers that load the addon one after another each run and exit cleanly', () => {
  const binding = path.join(__dirname, '..')
  const child = spawnSync(process.execPath, ['-e', script, binding], { encoding: 'utf8', timeout: 60_000 })
  assert.equal(child.signal, null, `the process died of ${child.signal}: ${child.stderr}`)
  assert.equal(child.status, 0, child.stderr)
  assert.deepEqual(child.stdout.trim().split('\n'), ['0 1 0', '1 1 0', '2 1 0', '3 1 0'])
})
