'use strict'
// A password in a URL never reaches anything Node can print: errors (message, stack,
// util.inspect) for malformed URLs, a wrong password and a closed port, and the inspected
// cache itself.
const test = require('node:test')
const assert = require('node:assert/strict')
const util = require('node:util')
const { execFileSync } = require('node:child_process')
const { Cache } = require('..')
const { harness, freePort } = require('./helpers')

const SECRET = 'S3cr3t-pw'

function shown(value) {
  if (value instanceof Error) return `${value.message}\n${value.stack}\n${util.inspect(value)}`
  return util.inspect(value, { depth: 5, showHidden: true })
}

test('no error or inspected object shows the password', async () => {
  const { endpoints, stop } = await harness(['--standalone'])
  try {
    const host = endpoints.standalone.split('://')[1]
    const printed = []
    const failure = async (make) => {
      try {
        await make()
      } catch (err) {
        printed.push(shown(err))
        return
      }
      assert.fail('expected a failure')
    }
    for (const url of [
      `redis://:${SECRET}@${host}?bogus=1`,
      `redis://:${SECRET}@${host}?ttl=nope`,
      `mongodb://:${SECRET}@${host}`,
      `redis+shards://:${SECRET}@`,
      `:${SECRET}@${host}`,
    ]) {
      // The constructor may accept the URL and fail on first use: either way, look.
      await failure(async () => new Cache({ url, connectTimeout: 0.3 }).get('k'))
      await failure(() => Cache.connect(url, { connectTimeout: 0.3 }))
    }
    const closed = await freePort()
    await failure(() => Cache.connect(`redis://:${SECRET}@127.0.0.1:${closed}`, { connectTimeout: 0.5 }))
    // A server that wants a password: a wrong one, then the right one.
    execFileSync('redis-cli', ['-p', host.split(':')[1], 'CONFIG', 'SET', 'requirepass', SECRET])
    await failure(() => Cache.connect(`redis://:${SECRET}x@${host}`, { connectTimeout: 0.5 }))
    const cache = await Cache.connect(`redis://:${SECRET}@${host}`)
    await cache.set('k', 1)
    printed.push(shown(cache), shown(await cache.metrics()))
    cache.close()
    await failure(() => cache.get('k'))
    for (const text of printed) assert.ok(!text.includes(SECRET), text)
    assert.ok(printed.length >= 13)
  } finally {
    await stop()
  }
})
