// A TCP proxy that adds a fixed delay each way, for benchmarks over a "network" on one
// machine (there is no netem here).
//
//   node bench/node/delay-proxy.mjs <upstream host:port> <delay ms each way>
//
// Prints `127.0.0.1:<port>` (where it listens) on stdout, then runs until stdin closes.
// Every chunk read from one side is written to the other `delay` ms after it was read, in
// order. Sub-millisecond delays need finer timers than setTimeout: while chunks are in
// flight the proxy polls with setImmediate for the last millisecond (it spins one core's
// worth of its own process under load, so run it in its own process, as http.mjs does).
import net from 'node:net'

const [upstream, delayArg] = process.argv.slice(2)
if (!upstream || delayArg === undefined) {
  console.error('usage: delay-proxy.mjs <upstream host:port> <delay ms each way>')
  process.exit(2)
}
const [upHost, upPort] = upstream.split(':')
const DELAY_NS = BigInt(Math.round(Number(delayArg) * 1e6))
const now = () => process.hrtime.bigint()

/** One direction of one connection: chunks waiting for their time, in order. */
function pipe(from, to) {
  const queue = []
  let scheduled = false
  const drain = () => {
    scheduled = false
    const t = now()
    while (queue.length > 0 && queue[0].due <= t) to.write(queue.shift().chunk)
    if (queue.length === 0) return
    scheduled = true
    const waitMs = Number(queue[0].due - t) / 1e6
    if (waitMs > 1.5) setTimeout(drain, Math.floor(waitMs - 1))
    else setImmediate(drain)
  }
  from.on('data', (chunk) => {
    queue.push({ due: now() + DELAY_NS, chunk })
    if (!scheduled) {
      scheduled = true
      if (DELAY_NS === 0n) drain()
      else setImmediate(drain)
    }
  })
  from.on('end', () => {
    const finish = () => (queue.length === 0 ? to.end() : setTimeout(finish, 1))
    finish()
  })
}

const server = net.createServer((client) => {
  client.setNoDelay(true)
  const server = net.connect(Number(upPort), upHost)
  server.setNoDelay(true)
  const close = () => { client.destroy(); server.destroy() }
  client.on('error', close)
  server.on('error', close)
  pipe(client, server)
  pipe(server, client)
})

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address()
  process.stdout.write(`127.0.0.1:${port}\n`)
})
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
