import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { redisUnavailable, startRedis, type RedisServer } from '../../test/helpers/redis.ts'
import { EventBus } from '../events/bus.ts'
import { makeEvent, type WarrenEvent } from '../events/types.ts'
import { configureLogging, log } from '../lib/log.ts'
import { ClusterEvents } from './event-relay.ts'
import { RedisRegistry } from './redis-registry.ts'

// ClusterEvents over a real redis-server: interest first, events only towards a node that listens.
const skip = redisUnavailable()
if (skip) console.warn(`event-relay tests skipped: ${skip}`)

let redis: RedisServer
const open: RedisRegistry[] = []
const tally = { endpoint: '', status: 200, durationMs: 1, requestBytes: 0, responseBytes: 0 }

async function member(id: string): Promise<{ registry: RedisRegistry; bus: EventBus; events: ClusterEvents }> {
  const registry = await RedisRegistry.connect({ url: redis.url, member: id, leaseMs: 1500, graceMs: 1000, log: log.child({ component: 'test' }) })
  open.push(registry)
  const bus = new EventBus()
  const events = new ClusterEvents(bus, registry)
  await registry.start(`127.0.0.1:${20000 + open.length}`)
  return { registry, bus, events }
}

const reload = (reason: string) => makeEvent('config_reload.v0', { reason, version: 1, ok: true, endpoints: 0, changed: [], errors: [] })

async function until(check: () => boolean, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!check() && Date.now() < deadline) await Bun.sleep(10)
  return check()
}

beforeAll(async () => {
  configureLogging({ level: 'error' })
  if (!skip) redis = await startRedis()
})
afterAll(async () => {
  configureLogging({ level: 'info' })
  for (const r of open) r.close()
  await Bun.sleep(50)
  await redis?.stop()
})

describe.skipIf(skip !== undefined)('ClusterEvents over Redis', () => {
  test('a node publishes only while another has a stream client; the client gets both nodes\' events', async () => {
    const a = await member('ev-a')
    const b = await member('ev-b')
    // Nobody listens: a's requests are counted without an event (the request path of a single edge).
    expect(a.bus.countRequest(tally)).toBe(true)
    a.bus.emit(reload('unheard'))
    a.bus.flush()
    expect(a.events.counts()).toEqual({ sent: 0, received: 0, dropped: 0 })

    const got: WarrenEvent[] = []
    const off = b.events.subscribe((batch) => got.push(...batch))
    // a learns that b listens (the note on warren:changes) and subscribes to its own bus to send.
    expect(await until(() => !a.bus.countRequest(tally))).toBe(true)
    a.bus.emit(reload('from-a'))
    b.bus.emit(reload('from-b'))
    expect(await until(() => got.some((e) => e.event_type === 'config_reload.v0' && e.object.reason === 'from-a'))).toBe(true)
    expect(got.some((e) => e.event_type === 'config_reload.v0' && e.object.reason === 'from-b')).toBe(true)
    expect(got.some((e) => e.event_type === 'config_reload.v0' && e.object.reason === 'unheard')).toBe(false)
    expect(a.events.counts().sent).toBeGreaterThan(0)
    expect(b.events.counts().received).toBe(a.events.counts().sent)
    // b does not send: nobody else listens.
    expect(b.events.counts().sent).toBe(0)

    off()
    // b's last client left: a stops building events for it.
    expect(await until(() => a.bus.countRequest(tally))).toBe(true)
    const sent = a.events.counts().sent
    a.bus.emit(reload('after'))
    a.bus.flush()
    await Bun.sleep(100)
    expect(a.events.counts().sent).toBe(sent)
  })

  test('a node that listens itself does not get its own events back from Redis', async () => {
    const a = await member('ev-c')
    const b = await member('ev-d')
    const onA: WarrenEvent[] = []
    const onB: WarrenEvent[] = []
    const offA = a.events.subscribe((batch) => onA.push(...batch))
    const offB = b.events.subscribe((batch) => onB.push(...batch))
    // Both listen, so both send: a's events reach b once a has seen b's listen channel.
    let emitted = 0
    const reached = await until(() => {
      emitted++
      a.bus.emit(reload('mine'))
      return onB.some((e) => e.event_type === 'config_reload.v0' && e.object.reason === 'mine')
    })
    expect(reached).toBe(true)
    await Bun.sleep(100)
    expect(a.events.counts().sent).toBeGreaterThan(0)
    // a's own stream got each of them once: from its bus, never again through Redis.
    expect(onA.filter((e) => e.event_type === 'config_reload.v0' && e.object.reason === 'mine')).toHaveLength(emitted)
    offA()
    offB()
  })
})
