import Redis from 'ioredis'
import { binding, startHarness } from '/work/main/bench/node/common.mjs'
const { Cache } = binding
const which = process.argv[2]
const N = Number(process.argv[3] ?? 50000)
const { url, stop } = await startHarness()
const cache = await Cache.connect(url, { namespace: 'b' })
const u = new URL(url)
const io = new Redis({ host: u.hostname, port: Number(u.port) })
const fn = which === 'pc' ? () => cache.get('missing') : () => io.get('missing')
for (let i = 0; i < 2000; i++) await fn()
const c0 = process.cpuUsage()
const t = process.hrtime.bigint()
for (let i = 0; i < N; i++) await fn()
const c = process.cpuUsage(c0)
console.log(which, 'wall', (Number(process.hrtime.bigint() - t) / 1e3 / N).toFixed(1), 'user', (c.user / N).toFixed(1), 'sys', (c.system / N).toFixed(1))
io.disconnect(); cache.close(); stop()
