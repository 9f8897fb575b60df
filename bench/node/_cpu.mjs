import Redis from 'ioredis'
import { binding, startHarness } from '/work/main/bench/node/common.mjs'
const { Cache } = binding
const N = Number(process.argv[2] ?? 20000)
const { url, stop } = await startHarness()
const cache = await Cache.connect(url, { namespace: 'b' })
const u = new URL(url)
const io = new Redis({ host: u.hostname, port: Number(u.port) })
await cache.set('hit', { a: 1, b: 'xx' })
await io.set('iohit', JSON.stringify({ a: 1, b: 'xx' }))
const v = { a: 1, b: 'xx' }
const fns = {
  pc_miss: () => cache.get('missing'),
  io_miss: () => io.get('missing'),
  pc_hit: () => cache.get('hit'),
  io_hit: async () => JSON.parse(await io.get('iohit')),
  pc_set: () => cache.set('hit', v),
  io_set: () => io.set('iohit', JSON.stringify(v)),
}
const best = {}, cpu = {}
for (let r = 0; r < 5; r++) {
  for (const [name, fn] of Object.entries(fns)) {
    for (let i = 0; i < 200; i++) await fn()
    const c0 = process.cpuUsage()
    const t = process.hrtime.bigint()
    for (let i = 0; i < N; i++) await fn()
    const us = Number(process.hrtime.bigint() - t) / 1e3 / N
    const c = process.cpuUsage(c0)
    best[name] = Math.min(best[name] ?? Infinity, us)
    cpu[name] = Math.min(cpu[name] ?? Infinity, (c.user + c.system) / N)
  }
}
for (const k of Object.keys(best)) console.log(k.padEnd(8), 'wall', best[k].toFixed(1), 'cpu', cpu[k].toFixed(1))
io.disconnect(); cache.close(); stop()
