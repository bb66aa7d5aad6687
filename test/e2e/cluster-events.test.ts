import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { redisUnavailable, startRedis, type RedisServer } from '../helpers/redis.ts'
import { openEventStream, type EventStream } from './framework/event-stream.ts'
import { freePort } from './framework/ports.ts'
import { eventually, startEdge, type Edge } from './framework/process.ts'

// `/events/stream` of a cluster (cluster.redis): a stream on node b carries the events of requests
// node a served, with `node`, through its filter; node a publishes nothing while no node streams;
// Redis away → the stream says so and keeps node b's own events, and the others' come back with Redis.
const skip = redisUnavailable()
if (skip) console.warn(`cluster-events e2e skipped: ${skip}`)

const LEASE_S = 2
const KEY = 'cluster-events-key'
const POLICY = `url: http://hello.warren.localhost
traffic_policy:
  on_http_request:
    - actions: [{type: custom-response, config: {status_code: 200, body: hello}}]
`

let redis: RedisServer
const certs = mkdtempSync(join(tmpdir(), 'warren-cluster-events-certs-'))
const nodes: Record<'a' | 'b', Edge> = {} as never

async function startNode(name: 'a' | 'b'): Promise<Edge> {
  const config = `api_keys: [${KEY}]
cluster:
  redis: ${redis.url}
  node: ${name}
  link: {listen: 127.0.0.1:${await freePort()}}
  lease: ${LEASE_S}
`
  const edge = await startEdge({ config, args: ['--certs', certs], policies: { 'hello.yml': POLICY } })
  await edge.waitForLog(/"msg":"cluster node joined"/, 10_000)
  return edge
}

/** One plain HTTP request to `node` for the cloud endpoint; returns the status. */
async function hit(node: Edge, path: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${node.httpPort}${path}`, { headers: { host: 'hello.warren.localhost' } })
  await res.arrayBuffer()
  return res.status
}

/** `warren_cluster_events_total{direction}` of one node (its own /metrics). */
async function relayed(node: Edge, direction: 'sent' | 'received'): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${node.apiPort}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text()
  const m = new RegExp(`^warren_cluster_events_total\\{direction="${direction}"\\} (\\d+)`, 'm').exec(text)
  if (!m) throw new Error(`no warren_cluster_events_total{direction="${direction}"} in the metrics of node ${node.apiPort}`)
  return Number(m[1])
}

/** Request events of one path in a stream. */
const requestsOf = (s: EventStream, path: string) => s.messages.filter((m) => m.event === 'http_request_complete.v0' && m.data.object.http.request.url.path === path).map((m) => m.data)

/**
 * Sends requests for `path` to `node` until `stream` has one of them: the sending node learns that
 * another listens from a Redis notice (milliseconds), or its next renewal (a third of a lease).
 */
async function untilStreamed(node: Edge, stream: EventStream, path: string, timeoutMs = 10_000): Promise<any> {
  const ok = await eventually(async () => {
    expect(await hit(node, path)).toBe(200)
    return requestsOf(stream, path).length > 0
  }, timeoutMs, 100)
  if (!ok) throw new Error(`no event of ${path} on the stream within ${timeoutMs} ms; messages: ${JSON.stringify(stream.messages.map((m) => m.event))}`)
  return requestsOf(stream, path)[0]
}

beforeAll(async () => {
  if (skip) return
  redis = await startRedis()
  nodes.a = await startNode('a')
  nodes.b = await startNode('b')
}, 60_000)

afterAll(async () => {
  await Promise.all(Object.values(nodes).map((n) => n?.stop()))
  await redis?.stop()
  rmSync(certs, { recursive: true, force: true })
})

describe.skipIf(!!skip)('cluster events (two nodes, redis-server)', () => {
  test('no node streams: node a sends none of its events', async () => {
    for (let i = 0; i < 20; i++) expect(await hit(nodes.a, `/quiet/${i}`)).toBe(200)
    // Two renewals later node a has looked for listeners at least twice.
    await Bun.sleep(2 * (LEASE_S * 1000) / 3 + 200)
    expect(await hit(nodes.a, '/quiet/last')).toBe(200)
    await Bun.sleep(200)
    expect(await relayed(nodes.a, 'sent')).toBe(0)
    expect(await relayed(nodes.b, 'received')).toBe(0)
  })

  test('a stream on node b carries node a\'s request events with node "a", through its filter; its own with node "b"', async () => {
    const all = await openEventStream(nodes.b.apiPort, KEY)
    const filtered = await openEventStream(nodes.b.apiPort, KEY, 'ev.http.request.url.path == "/wanted"')
    try {
      expect(all.messages[0]!.data).toMatchObject({ node: 'b' })
      const remote = await untilStreamed(nodes.a, all, '/other')
      expect(remote.node).toBe('a')
      expect(remote.object.conn.server_name).toBe('hello.warren.localhost')
      expect(remote.event_id).toMatch(/^ev_/)
      const wanted = await untilStreamed(nodes.a, filtered, '/wanted')
      expect(wanted.node).toBe('a')
      // Node b's own request, on the same stream, says node b.
      expect(await hit(nodes.b, '/local')).toBe(200)
      expect(await eventually(async () => requestsOf(all, '/local').length === 1, 5000)).toBe(true)
      expect(requestsOf(all, '/local')[0]!.node).toBe('b')
      // The filter kept node a's other requests (and node b's) out.
      expect(await eventually(async () => requestsOf(all, '/wanted').length > 0, 5000)).toBe(true)
      expect(filtered.messages.filter((m) => m.event === 'http_request_complete.v0').every((m) => m.data.object.http.request.url.path === '/wanted')).toBe(true)
      expect(requestsOf(filtered, '/other')).toEqual([])
      expect(await relayed(nodes.a, 'sent')).toBeGreaterThan(0)
      expect(await relayed(nodes.b, 'received')).toBeGreaterThan(0)
      // Node b listens, node a does not: node b sends nothing.
      expect(await relayed(nodes.b, 'sent')).toBe(0)
    } finally {
      all.stop()
      filtered.stop()
    }
  })

  test('the last stream closed: node a stops sending', async () => {
    // Node b unsubscribes once its last stream ends; node a stops at the notice (or its next renewal).
    const stopped = await eventually(
      async () => {
        const before = await relayed(nodes.a, 'sent')
        expect(await hit(nodes.a, '/after-close')).toBe(200)
        await Bun.sleep(150)
        return (await relayed(nodes.a, 'sent')) === before
      },
      10_000,
      100,
    )
    expect(stopped).toBe(true)
    const sent = await relayed(nodes.a, 'sent')
    for (let i = 0; i < 10; i++) expect(await hit(nodes.a, `/after-close/${i}`)).toBe(200)
    await Bun.sleep(300)
    expect(await relayed(nodes.a, 'sent')).toBe(sent)
  })

  test('Redis away: the stream says the others are missing and keeps node b\'s own events; with Redis back node a\'s come again', async () => {
    const stream = await openEventStream(nodes.b.apiPort, KEY)
    try {
      await untilStreamed(nodes.a, stream, '/before-outage')
      await redis.kill()
      expect(await eventually(async () => stream.messages.some((m) => m.event === 'cluster' && m.data.complete === false), 10_000, 50)).toBe(true)
      const notice = stream.messages.find((m) => m.event === 'cluster')!
      expect(notice.data.message).toContain('Redis')
      expect(await hit(nodes.b, '/during-outage')).toBe(200)
      expect(await eventually(async () => requestsOf(stream, '/during-outage').length === 1, 5000)).toBe(true)
      expect(requestsOf(stream, '/during-outage')[0]!.node).toBe('b')
      await redis.restart()
      expect(await eventually(async () => stream.messages.some((m) => m.event === 'cluster' && m.data.complete === true), 15_000, 50)).toBe(true)
      // Redis restarted empty: node b subscribes again, node a sees it listening and sends again.
      const again = await untilStreamed(nodes.a, stream, '/after-outage', 15_000)
      expect(again.node).toBe('a')
    } finally {
      stream.stop()
    }
  }, 60_000)
})
