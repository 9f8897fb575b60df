// One HTTP server of the HTTP benchmark (http.mjs): every request does one cache read and
// answers with the value as JSON.
//
//   node bench/node/http-server.mjs <client> <redis url>
//
// <client> is `polycache` (Cache.get of a stored object), `ioredis` (GET + JSON.parse) or
// `ioredis-pipelined` (the same with enableAutoPipelining). Prints the port it listens on,
// then runs until stdin closes.
import http from 'node:http'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

import Redis from 'ioredis'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
const [client, url] = process.argv.slice(2)

let read
if (client === 'polycache') {
  const { Cache } = require(path.join(here, '..', '..', 'bindings-node'))
  const cache = await Cache.connect(url, { namespace: 'bench-http' })
  read = () => cache.get('user')
} else if (client === 'ioredis' || client === 'ioredis-pipelined') {
  const { hostname, port } = new URL(url)
  const redis = new Redis({ host: hostname, port: Number(port), enableAutoPipelining: client === 'ioredis-pipelined' })
  read = async () => JSON.parse(await redis.get('raw:user'))
} else {
  console.error(`unknown client ${client}`)
  process.exit(2)
}

const server = http.createServer(async (req, res) => {
  try {
    const value = await read()
    const body = JSON.stringify(value)
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  } catch (err) {
    res.writeHead(500)
    res.end(String(err))
  }
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`))
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
