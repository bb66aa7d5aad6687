import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { redisUnavailable, startRedis, type RedisServer } from '../helpers/redis.ts'
import { freePort } from './framework/ports.ts'
import { eventually, hostFetch, startEdge, type Edge } from './framework/process.ts'

// rate-limit and circuit-breaker `scope: cluster`: three `warren serve` nodes sharing a redis-server on
// loopback count one limit and open one breaker together; Redis killed → every node still answers,
// deciding alone, and says so.
const skip = redisUnavailable()
if (skip) console.warn(`cluster-ratelimit e2e skipped: ${skip}`)

const API_KEY = 'limits-key'
const HOST = 'limited.warren.localhost'
/** Requests per window across the cluster, and the window. */
const CAPACITY = 5
const WINDOW_MS = 3000

/** A policies file with one cloud endpoint on `host` running `actions` (YAML list items, indented). */
function endpointFile(host: string, actions: string): string {
  return `endpoints:
  - url: http://${host}
    traffic_policy:
      on_http_request:
        - actions:
${actions}`
}

const POLICY = endpointFile(
  HOST,
  `            - type: rate-limit
              config: {name: shared, capacity: ${CAPACITY}, rate: ${WINDOW_MS / 1000}s, bucket_key: [req.host], scope: cluster}
            - type: custom-response
              config: {status_code: 200, body: "ok"}
`,
)

const BREAKER_HOST = 'breaker.warren.localhost'
/** An upstream that always fails, counting what reaches it. */
let failing = 0
const upstream = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => (failing++, new Response('down', { status: 502 })) })
const BREAKER_POLICY = endpointFile(
  BREAKER_HOST,
  `            - type: circuit-breaker
              config: {volume_threshold: 6, error_threshold: 0.5, window_duration: 30s, tripped_duration: 30s, scope: cluster}
            - type: forward-external
              config: {url: "http://127.0.0.1:${upstream.port}"}
`,
)

let redis: RedisServer
const nodes: Edge[] = []

function config(node: string, linkPort: number): string {
  return `api_keys: [${API_KEY}]
public_ports: {http: 80}
cluster:
  redis: ${redis.url}
  node: ${node}
  link: {listen: 127.0.0.1:${linkPort}}
  lease: 2
`
}

/** `count` requests at once, spread over the nodes in turn: their statuses and error codes. */
async function burst(count: number): Promise<{ status: number; code: string | null; retryAfter: string | null; node: number }[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const node = i % nodes.length
      const res = await hostFetch(nodes[node]!, HOST, '/', { signal: AbortSignal.timeout(5000) })
      await res.arrayBuffer()
      return { status: res.status, code: res.headers.get('warren-error-code'), retryAfter: res.headers.get('retry-after'), node }
    }),
  )
}

/** Waits until the next window starts (Redis runs on this machine's clock), plus a margin. */
async function nextWindow(): Promise<void> {
  await Bun.sleep(WINDOW_MS - (Date.now() % WINDOW_MS) + 50)
}

async function localDecisions(edge: Edge): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${edge.apiPort}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } })
  const line = (await res.text()).split('\n').find((l) => l.startsWith('warren_cluster_local_decisions_total{action="rate-limit"}'))
  return line ? Number(line.split(' ').pop()) : 0
}

/**
 * Sends requests to each node until its log says, for the `outage`-th time, that Redis decides again
 * (a node says so after the first decision Redis makes once it is back).
 */
async function decidingThroughRedis(outage: number): Promise<void> {
  const said = (n: Edge) => n.logs().split('\n').filter((l) => l.includes('Redis decides scope: cluster rate limits and circuit breakers again')).length
  for (const n of nodes) {
    const back = await eventually(async () => {
      await (await hostFetch(n, HOST)).arrayBuffer()
      return said(n) >= outage
    }, 10_000, 200)
    expect(back).toBe(true)
    expect(said(n)).toBe(outage)
  }
}

beforeAll(async () => {
  if (skip) return
  redis = await startRedis()
  for (const name of ['a', 'b', 'c']) {
    const edge = await startEdge({ config: config(name, await freePort()), policies: { 'limited.yml': POLICY, 'breaker.yml': BREAKER_POLICY } })
    await edge.waitForLog(/"msg":"cluster node joined"/, 10_000)
    nodes.push(edge)
  }
})
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()))
  await redis?.stop()
  upstream.stop(true)
})

describe.skipIf(skip !== undefined)('scope: cluster across three nodes', () => {
  test('exactly the capacity passes per window whichever nodes take the requests; the window after next passes again', async () => {
    await nextWindow()
    const first = await burst(CAPACITY * 3)
    expect(first.filter((r) => r.status === 200).length).toBe(CAPACITY)
    const refused = first.filter((r) => r.status !== 200)
    expect(refused.length).toBe(CAPACITY * 2)
    for (const r of refused) {
      expect(r.status).toBe(429)
      expect(r.code).toBe('ERR_WARREN_2104')
      expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1)
    }
    // Every node took some of the requests (and, counted alone, each would have let CAPACITY through).
    expect(new Set(first.map((r) => r.node)).size).toBe(3)
    // Two windows on, the previous window's count has slid out: the whole capacity again, no more.
    await nextWindow()
    await nextWindow()
    const again = await burst(CAPACITY * 3)
    expect(again.filter((r) => r.status === 200).length).toBe(CAPACITY)
    expect(again.filter((r) => r.status === 429).length).toBe(CAPACITY * 2)
    for (const n of nodes) expect(await localDecisions(n)).toBe(0)
  })

  test('a circuit breaker opens on every node from failures spread over the three (none saw enough alone)', async () => {
    // Two failing requests per node: 6 in the cluster's window, the volume threshold; 2 per node is not.
    for (let i = 0; i < 6; i++) expect((await hostFetch(nodes[i % 3]!, BREAKER_HOST)).status).toBe(502)
    // The upstream's answers are recorded in Redis as they arrive (not awaited by the request).
    for (const n of nodes) {
      const open = await eventually(async () => {
        const res = await hostFetch(n, BREAKER_HOST)
        await res.arrayBuffer()
        return res.status === 503 && res.headers.get('warren-error-code') === 'ERR_WARREN_2105'
      }, 5000, 50)
      expect(open).toBe(true)
    }
    // Shared: the six failures (give or take a request racing a record) were enough for all three; a
    // breaker per node would have let at least 6 through each, 18 in all.
    expect(failing).toBeLessThanOrEqual(8)
    // Open: nothing reaches the upstream any more, whichever node is asked.
    const reached = failing
    for (let i = 0; i < 6; i++) {
      const res = await hostFetch(nodes[i % 3]!, BREAKER_HOST)
      expect(res.status).toBe(503)
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(1)
    }
    expect(failing).toBe(reached)
  })

  test('Redis hung (SIGSTOP): requests wait at most the decision timeout (250 ms) once, then are decided locally at once', async () => {
    redis.pause()
    try {
      const times: number[] = []
      for (let i = 0; i < 9; i++) {
        const started = performance.now()
        const res = await hostFetch(nodes[i % 3]!, HOST, '/', { signal: AbortSignal.timeout(5000) })
        await res.arrayBuffer()
        times.push(performance.now() - started)
        expect([200, 429]).toContain(res.status)
      }
      // The first request per node waits for the timeout; the next ones go local without waiting.
      expect(Math.max(...times)).toBeLessThan(2000)
      expect(times.slice(3).filter((t) => t > 200).length).toBeLessThanOrEqual(2)
      for (const n of nodes) await n.waitForLog(/ERR_WARREN_7030/, 5000)
    } finally {
      redis.resume()
    }
    await decidingThroughRedis(1)
  })

  test('Redis killed: every node still answers, decides alone (at most the capacity each), logs it once per outage and counts it', async () => {
    const sum = async () => (await Promise.all(nodes.map(localDecisions))).reduce((a, b) => a + b, 0)
    const before = await Promise.all(nodes.map(localDecisions))
    await redis.kill()
    try {
      // Two windows on: the nodes' own windows hold nothing from the hung Redis before.
      await nextWindow()
      await nextWindow()
      const started = performance.now()
      const during = await burst(CAPACITY * 3 * 2)
      // Nothing waits for the dead Redis: 30 requests answered well within a second on loopback.
      expect(performance.now() - started).toBeLessThan(3000)
      expect(during.every((r) => r.status === 200 || r.status === 429)).toBe(true)
      const passed = during.filter((r) => r.status === 200)
      for (let node = 0; node < 3; node++) expect(passed.filter((r) => r.node === node).length).toBeLessThanOrEqual(CAPACITY)
      expect(passed.length).toBeGreaterThanOrEqual(CAPACITY)
      for (const [i, n] of nodes.entries()) {
        await eventually(async () => n.logs().split('\n').filter((l) => l.includes('ERR_WARREN_7030')).length >= 2, 5000)
        // Once per outage: the hung Redis before was the first.
        expect(n.logs().split('\n').filter((l) => l.includes('ERR_WARREN_7030')).length).toBe(2)
        expect(await localDecisions(n)).toBeGreaterThan(before[i]!)
      }
      expect((await sum()) - before.reduce((a, b) => a + b, 0)).toBe(during.length)
    } finally {
      await redis.restart()
    }
    // Redis back (empty): the nodes decide through it again; the log says so.
    await decidingThroughRedis(2)
    await nextWindow()
    await nextWindow()
    const after = await burst(CAPACITY * 3)
    expect(after.filter((r) => r.status === 200).length).toBe(CAPACITY)
  })
})

describe('rate-limit scope: cluster under --workers without Redis', () => {
  test('the policy is refused (ERR_WARREN_2170, file and line named); scope: endpoint loads', async () => {
    const edge = await startEdge({
      args: ['--workers', '2'],
      policies: { 'limited.yml': POLICY, 'local.yml': POLICY.replace(HOST, 'local.warren.localhost').replace('scope: cluster', 'scope: endpoint') },
    })
    try {
      const line = await edge.waitForLog(/ERR_WARREN_2170/, 10_000)
      expect(line).toContain('limited.yml:')
      expect(line).toContain('scope: cluster needs cluster.redis')
      expect((await hostFetch(edge, `${HOST}:${edge.httpPort}`)).status).toBe(404)
      expect((await hostFetch(edge, `local.warren.localhost:${edge.httpPort}`)).status).toBe(200)
    } finally {
      await edge.stop()
    }
  })
})
