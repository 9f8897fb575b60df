// Type-checked by `make lint` (tsc --noEmit): the README's usage written against index.d.ts.
import { Cache, NOT_FOUND, type CacheOptions, type CacheValue, type Entry, type ErrorCode, type LoadOptions, type Metrics, callKey } from 'polycache'

interface User {
  [key: string]: CacheValue
  id: number
  name: string
}

async function main(): Promise<void> {
  const options: CacheOptions = { namespace: 'users', ttl: 60, codec: 'msgpack', io: 'auto' }
  const cache = await Cache.connect('redis://127.0.0.1:6379', options)
  const local = new Cache({ loader: async (key: string) => `row for ${key}` })

  const user: User = await cache.getOrLoad<User>('user:42', async () => ({ id: 42, name: 'Ada' }), { ttl: 30 })
  const fresh: LoadOptions = { ttl: 3600, freshFor: 60, maxStale: 600, hardTimeout: 2 }
  const entry: Entry<User> = await cache.getEntry<User>('user:42', async () => ({ id: 42, name: 'Ada' }), fresh)
  const state: 'fresh' | 'stale' | 'fail-safe' = entry.freshness
  const age: number | null = entry.stale ? entry.age : null
  const maybe: User | undefined = await cache.getOrLoad<User>('user:0', async () => NOT_FOUND, { negativeTtl: 60 })
  const found: boolean = (await cache.getEntry('user:0', () => NOT_FOUND)).found
  const again: User | undefined = await cache.get<User>('user:42')
  await cache.set('greeting', 'hello')
  await cache.setMany({ a: 1, b: 2 }, { ttl: 10 })
  await cache.setMany([['c', Buffer.from('bytes')]])
  const values: Array<CacheValue | undefined> = await cache.getMany(['a', 'b', 'missing'])
  const existed: boolean = await cache.delete('greeting')
  const ttl: number | null = await cache.ttl('a')

  const getUser = cache.wrap(async (id: number): Promise<User> => ({ id, name: 'Ada' }), { key: 'user:{0}', ttl: 60, freshFor: 10 })
  const wrapped: User = await getUser(42)

  const metrics: Metrics = cache.metrics()
  const key: string = cache.redisKey('user:42') + callKey('f', [1, 'two'])
  try {
    await local.get('')
  } catch (err) {
    const code = (err as { code?: ErrorCode }).code
    if (code === 'EKEY') console.log('empty keys are refused')
  }
  console.log(user, maybe, found, entry.value, state, age, again, values, existed, ttl, wrapped, metrics.hits, key)
  cache.close()
}

void main()
