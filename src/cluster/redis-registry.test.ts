import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startRedis, redisUnavailable, type RedisServer } from '../../test/helpers/redis.ts'
import { configureLogging, log } from '../lib/log.ts'
import { Redis } from 'ioredis'
import { EventBus } from '../events/bus.ts'
import { makeEvent, type WarrenEvent } from '../events/types.ts'
import { ClusterEvents } from './event-relay.ts'
import { RedisRegistry } from './redis-registry.ts'
import type { EndpointClaim, MemberHoldings } from './registry.ts'

// A real redis-server on loopback: the registry of several nodes, its leases, pub/sub, commands.
const skip = redisUnavailable()
if (skip) console.warn(`redis-registry tests skipped: ${skip}`)

let redis: RedisServer
const open: RedisRegistry[] = []
const quiet = log.child({ component: 'test' })

async function node(member: string, leaseMs = 1500): Promise<RedisRegistry> {
  const r = await RedisRegistry.connect({ url: redis.url, member, leaseMs, graceMs: 2000, log: quiet })
  open.push(r)
  await r.start(`127.0.0.1:${10000 + open.length}`)
  return r
}

function claim(tunnel: string, host: string, session: string | undefined, pooling = false): EndpointClaim {
  return { tunnel, account: 'alice', url: { scheme: 'https', host, port: undefined, wildcard: false, binding: 'public' }, proto: 'https', proxyProtocol: 0, pooling, policy: {}, description: undefined, metadata: undefined, session }
}

function holdings(endpoints: EndpointClaim[], sessions: string[], connectedAt = Date.now()): MemberHoldings {
  return { endpoints, sessions: sessions.map((id) => ({ id, account: 'alice', remoteAddr: '127.0.0.1:1', connectedAt, clientInfo: {}, latencyMs: 1 })) }
}

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

describe.skipIf(skip !== undefined)('RedisRegistry', () => {
  test('a node sees what another publishes, at once (pub/sub), with its link', async () => {
    const a = await node('a1')
    const b = await node('b1')
    let changes = 0
    b.onChange(() => changes++)
    a.publish(holdings([claim('tn_1', 'one.warren.localhost', 's1')], ['s1']))
    expect(await until(() => b.others().some((m) => m.member === 'a1' && m.endpoints.length === 1), 1000)).toBe(true)
    const seen = b.others().find((m) => m.member === 'a1')!
    expect(seen.alive).toBe(true)
    expect(seen.link).toBe('127.0.0.1:10001')
    expect(seen.sessions.map((s) => s.id)).toEqual(['s1'])
    expect(changes).toBeGreaterThan(0)
    // A node never lists itself.
    expect(a.others().some((m) => m.member === 'a1')).toBe(false)
  })

  test('a node that leaves is gone at once: its sessions end, its endpoints stay reserved offline', async () => {
    const a = await node('a2')
    const b = await node('b2')
    a.publish(holdings([claim('tn_2', 'two.warren.localhost', 's2')], ['s2']))
    expect(await until(() => b.others().some((m) => m.member === 'a2' && m.alive))).toBe(true)
    a.close()
    expect(await until(() => b.others().some((m) => m.member === 'a2' && !m.alive))).toBe(true)
    const gone = b.others().find((m) => m.member === 'a2')!
    expect(gone.sessions).toEqual([])
    expect(gone.endpoints.map((e) => [e.tunnel, e.session])).toEqual([['tn_2', undefined]])
    // Another node binding the same tunnel takes the reservation over.
    b.publish(holdings([claim('tn_2', 'two.warren.localhost', 's2b')], ['s2b']))
    expect(b.others().some((m) => m.member === 'a2')).toBe(false)
  })

  test('an agent that reconnected elsewhere (same session, later connection) leaves its old claim offline', async () => {
    const a = await node('a3')
    const b = await node('b3')
    a.publish(holdings([claim('tn_3', 'three.warren.localhost', 's3')], ['s3'], Date.now() - 1000))
    expect(await until(() => b.others().some((m) => m.member === 'a3' && m.endpoints[0]?.session === 's3'))).toBe(true)
    // The agent shows up on b with the same session id: b's view changes before Redis answers.
    b.publish(holdings([], ['s3']))
    const onA = b.others().find((m) => m.member === 'a3')!
    expect(onA.endpoints[0]!.session).toBeUndefined()
    expect(onA.sessions).toEqual([])
  })

  test('commands reach the node holding the session and come back with its answer', async () => {
    const a = await node('a4')
    const b = await node('b4')
    const ran: string[] = []
    a.onCommand(async (c) => (ran.push(`${c.action} ${c.session}`), c.action === 'restart' ? 'agent refused' : ''))
    expect(await b.command('a4', { session: 's4', action: 'stop' })).toBe('')
    expect(await b.command('a4', { session: 's4', action: 'restart' })).toBe('agent refused')
    expect(ran).toEqual(['stop s4', 'restart s4'])
    expect(await b.command('nobody', { session: 's4', action: 'stop' })).toBe('node nobody is gone')
  })

  test('split brain: two nodes claiming one non-pooled URL for two agents, one wins and the other is told', async () => {
    const a = await node('a5')
    const b = await node('b5')
    const lost: string[] = []
    // As the node does: the loser's endpoint goes, so it claims the URL no more.
    a.onLost((c, holder) => (lost.push(`a5 lost ${c.tunnel} to ${holder}`), a.publish(holdings([], ['sa']))))
    b.onLost((c, holder) => (lost.push(`b5 lost ${c.tunnel} to ${holder}`), b.publish(holdings([], ['sb']))))
    a.publish(holdings([claim('tn_a', 'split.warren.localhost', 'sa')], ['sa']))
    b.publish(holdings([claim('tn_b', 'split.warren.localhost', 'sb')], ['sb']))
    expect(await until(() => lost.length > 0)).toBe(true)
    await Bun.sleep(600)
    expect(lost.length).toBe(1)
    expect(lost[0]).toMatch(/^(a5 lost tn_a to b5|b5 lost tn_b to a5)$/)
    // The winner's endpoint is what the loser now serves (through the winner).
    const [winner, loser] = lost[0]!.startsWith('a5') ? [b, a] : [a, b]
    expect(await until(() => loser.others().some((m) => m.member === winner.self && m.endpoints.length === 1))).toBe(true)
    // Pooled endpoints share a URL: no claim, nobody loses.
    const c = await node('c5')
    const d = await node('d5')
    const pooled: string[] = []
    c.onLost(() => pooled.push('c'))
    d.onLost(() => pooled.push('d'))
    c.publish(holdings([claim('tn_c', 'pool.warren.localhost', 'sc', true)], ['sc']))
    d.publish(holdings([claim('tn_d', 'pool.warren.localhost', 'sd', true)], ['sd']))
    await Bun.sleep(700)
    expect(pooled).toEqual([])
  })

  test('shared values are made once, by the first node that asks', async () => {
    const a = await node('a6')
    const b = await node('b6')
    const [x, y] = await Promise.all([a.shared('t', async () => 'from-a'), b.shared('t', async () => 'from-b')])
    expect(x).toBe(y)
    expect(['from-a', 'from-b']).toContain(x!)
  })

  test('Redis killed and started again (empty): nodes keep their view, then publish again and pub/sub works', async () => {
    // A long lease (renewed every 10 s): what b learns within a second came by pub/sub, not by a renewal's read.
    const a = await node('a7', 30_000)
    const b = await node('b7', 30_000)
    a.publish(holdings([claim('tn_7', 'seven.warren.localhost', 's7')], ['s7']))
    expect(await until(() => b.others().some((m) => m.member === 'a7'))).toBe(true)
    const secret = await a.shared('secret7', async () => 'the first')
    await redis.kill()
    await Bun.sleep(800)
    // Nothing answers, yet b still serves what it knew.
    expect(b.others().some((m) => m.member === 'a7' && m.alive)).toBe(true)
    // A change while Redis is away is published when it returns.
    a.publish(holdings([claim('tn_7', 'seven.warren.localhost', 's7'), claim('tn_8', 'eight.warren.localhost', 's7')], ['s7']))
    await redis.restart()
    expect(await until(() => b.others().find((m) => m.member === 'a7')?.endpoints.length === 2, 5000)).toBe(true)
    // Subscriptions were restored: a change after the restart arrives by pub/sub.
    a.publish(holdings([claim('tn_9', 'nine.warren.localhost', 's7')], ['s7']))
    expect(await until(() => b.others().find((m) => m.member === 'a7')?.endpoints[0]?.tunnel === 'tn_9', 1000)).toBe(true)
    // The running nodes wrote their shared values again: a node joining now gets the same (a new link CA would split the cluster).
    const c = await node('c7', 30_000)
    expect(await c.shared('secret7', async () => 'made after the restart')).toBe(secret)
  }, 20_000)

  test('a lock: one taker at a time, renewed past its TTL while held, released only by its holder', async () => {
    const a = await node('a8')
    const b = await node('b8')
    const lost: string[] = []
    const [x, y] = await Promise.all([a.lock('l8', 300, () => lost.push('a')), b.lock('l8', 300, () => lost.push('b'))])
    expect([x, y].filter(Boolean).length).toBe(1)
    const [holder, other] = x ? [a, b] : [b, a]
    const held = (x ?? y)!
    expect(await other.lockHolder('l8')).toBe(holder.self)
    // Three TTLs later it is still held: the holder renews it.
    await Bun.sleep(900)
    expect(held.held).toBe(true)
    expect(await other.lock('l8', 300, () => {})).toBeUndefined()
    await held.release()
    expect(await other.lockHolder('l8')).toBeUndefined()
    const next = await other.lock('l8', 300, () => {})
    expect(next).toBeDefined()
    // A release by the former holder (compare-and-delete) leaves the new holder's lock alone.
    await held.release()
    expect(await holder.lockHolder('l8')).toBe(other.self)
    await next!.release()
    expect(lost).toEqual([])
  })

  test('a lock whose holder stops renewing (killed) runs out and another node takes it; the holder learns it lost it', async () => {
    const a = await node('a9')
    const b = await node('b9')
    const lost: string[] = []
    const mine = await a.lock('l9', 400, () => lost.push('a'))
    expect(mine).toBeDefined()
    // As if it ran out while a stalled: the key is gone and b takes it.
    const raw = new Redis(redis.url)
    try {
      await raw.del('warren:lock:l9')
    } finally {
      raw.disconnect()
    }
    const theirs = await b.lock('l9', 400, () => {})
    expect(theirs).toBeDefined()
    expect(await until(() => lost.length === 1, 1000)).toBe(true)
    expect(mine!.held).toBe(false)
    await mine!.release()
    expect(await a.lockHolder('l9')).toBe('b9')
    // b leaves without releasing (its renewals stop with it): the lock runs out within its TTL.
    b.close()
    const started = Date.now()
    let taken: Awaited<ReturnType<RedisRegistry['lock']>>
    while (!(taken = await a.lock('l9', 400, () => {})) && Date.now() - started < 2000) await Bun.sleep(25)
    expect(taken).toBeDefined()
    expect(Date.now() - started).toBeLessThan(1000)
    await taken!.release()
  })

  test('renewals read the others\' holdings only when they changed; a change is still read at once', async () => {
    const a = await node('a10', 300)
    const b = await node('b10', 300)
    a.publish(holdings([claim('tn_10', 'ten.warren.localhost', 's10')], ['s10']))
    expect(await until(() => b.others().some((m) => m.member === 'a10' && m.endpoints.length === 1))).toBe(true)
    const raw = new Redis(redis.url)
    const holdingReads = async () => Number(/cmdstat_mget:calls=(\d+)/.exec(await raw.info('commandstats'))?.[1] ?? 0)
    try {
      await Bun.sleep(300)
      const before = await holdingReads()
      // Three renewals of each node (every 100 ms), nothing changed: no holdings read.
      await Bun.sleep(350)
      expect(await holdingReads()).toBe(before)
      expect(b.others().find((m) => m.member === 'a10')?.alive).toBe(true)
      a.publish(holdings([claim('tn_10', 'ten.warren.localhost', 's10'), claim('tn_11', 'eleven.warren.localhost', 's10')], ['s10']))
      expect(await until(() => b.others().some((m) => m.member === 'a10' && m.endpoints.length === 2), 1000)).toBe(true)
      expect(await holdingReads()).toBeGreaterThan(before)
    } finally {
      raw.disconnect()
    }
  })
})

// ClusterEvents over the registry: interest first, events only towards a node that listens.
const tally = { endpoint: '', endpointId: '', method: 'GET', path: '/', status: 200, durationMs: 1, requestBytes: 0, responseBytes: 0 }

async function member(id: string): Promise<{ registry: RedisRegistry; bus: EventBus; events: ClusterEvents }> {
  const registry = await node(id)
  const bus = new EventBus()
  return { registry, bus, events: new ClusterEvents(bus, registry) }
}

const reload = (reason: string) => makeEvent('config_reload.v0', { reason, version: 1, ok: true, endpoints: 0, changed: [], errors: [] })

describe.skipIf(skip !== undefined)('RedisRegistry as the event relay of ClusterEvents', () => {
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
