import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { openEventStream, type EventStream } from './framework/event-stream.ts'
import { eventually, fileEvents, startEdge, type Edge } from './framework/process.ts'

// Events under `warren serve --workers 2`: a stream on one worker carries the other worker's events
// (with `worker`), through its filter; nothing is sent between workers while nobody streams; each
// worker writes its own file sink.
const KEY = 'workers-events-key'
const POLICY = `url: http://hello.warren.localhost
traffic_policy:
  on_http_request:
    - actions: [{type: custom-response, config: {status_code: 200, body: hello}}]
`
let edge: Edge

/**
 * `count` plain HTTP requests for `path`/<i>, each on a fresh connection (curl, `Connection: close`):
 * the kernel spreads new connections over the workers. Returns the status codes.
 */
async function hitMany(path: string, count: number): Promise<number[]> {
  const urls = Array.from({ length: count }, (_, i) => `http://127.0.0.1:${edge.httpPort}${path}/${i}`)
  const proc = Bun.spawn(['curl', '-s', '--max-time', '30', '-w', '%{http_code}\\n', '-H', 'host: hello.warren.localhost', '-H', 'connection: close', ...urls.flatMap((u) => ['-o', '/dev/null', u])], { stdout: 'pipe' })
  const out = await new Response(proc.stdout).text()
  await proc.exited
  return out.trim().split('\n').map(Number)
}

/** `warren_cluster_events_total{direction="sent"}` of whichever worker took each of `count` fresh connections. */
async function sentCounts(count: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < count; i++) {
    const res = await fetch(`http://127.0.0.1:${edge.apiPort}/metrics`, { headers: { authorization: `Bearer ${KEY}`, connection: 'close' } })
    const m = /^warren_cluster_events_total\{direction="sent"\} (\d+)/m.exec(await res.text())
    if (!m) throw new Error('no warren_cluster_events_total{direction="sent"} in a worker\'s metrics')
    out.push(Number(m[1]))
  }
  return out
}

const requestsUnder = (s: EventStream, prefix: string) => s.messages.filter((m) => m.event === 'http_request_complete.v0' && m.data.object.http.request.url.path.startsWith(prefix)).map((m) => m.data)

beforeAll(async () => {
  edge = await startEdge({
    config: `api_keys: [${KEY}]
events:
  sinks:
    - type: file
      path: events.jsonl
`,
    policies: { 'hello.yml': POLICY },
    args: ['--workers', '2'],
  })
  await edge.waitForLog(/"msg":"workers started"/, 20_000)
})
afterAll(async () => {
  await edge?.stop()
})

describe('events with --workers 2 (compiled binary)', () => {
  test('nobody streams: no worker sends its events to the other', async () => {
    expect(await hitMany('/quiet', 20)).toEqual(Array(20).fill(200))
    expect(await sentCounts(8)).toEqual(Array(8).fill(0))
  })

  test('a stream on one worker carries the requests the other worker served, with `worker`, through its filter', async () => {
    const all = await openEventStream(edge.apiPort, KEY)
    const filtered = await openEventStream(edge.apiPort, KEY, 'ev.http.request.url.path.startsWith("/wanted")')
    try {
      const mine = all.messages[0]!.data.worker
      expect([1, 2]).toContain(mine)
      const other = mine === 1 ? 2 : 1
      // Fresh connections until the other worker served some (the kernel's hash picks; a few rounds at most).
      const ok = await eventually(
        async () => {
          expect(await hitMany('/spread', 10)).toEqual(Array(10).fill(200))
          return requestsUnder(all, '/spread').some((e) => e.worker === other)
        },
        15_000,
        100,
      )
      expect(ok).toBe(true)
      expect(requestsUnder(all, '/spread').every((e) => e.worker === 1 || e.worker === 2)).toBe(true)
      // The filter applies to the other worker's events as to this one's.
      const filterOk = await eventually(
        async () => {
          await hitMany('/wanted', 6)
          await hitMany('/unwanted', 6)
          const events = filtered.messages.filter((m) => m.event === 'http_request_complete.v0').map((m) => m.data)
          return events.some((e) => e.worker === other)
        },
        15_000,
        100,
      )
      expect(filterOk).toBe(true)
      const events = filtered.messages.filter((m) => m.event === 'http_request_complete.v0').map((m) => m.data)
      expect(events.every((e) => e.object.http.request.url.path.startsWith('/wanted'))).toBe(true)
      expect(requestsUnder(all, '/unwanted').length).toBeGreaterThan(0)
      // The other worker counted what it sent (a scrape reaches either worker: a few until it is that one).
      expect(await eventually(async () => Math.max(...(await sentCounts(4))) > 0, 10_000, 10)).toBe(true)
    } finally {
      all.stop()
      filtered.stop()
    }
  })

  test('each worker writes its own file sink (events.w1.jsonl, events.w2.jsonl), whole lines, every request once', async () => {
    const statuses = await hitMany('/filed', 30)
    expect(statuses).toEqual(Array(30).fill(200))
    const filed = () => [1, 2].flatMap((n) => fileEvents(edge, `events.w${n}.jsonl`).map((e) => ({ ...e, file: n })))
    expect(await eventually(async () => filed().filter((e) => e.event_type === 'http_request_complete.v0' && e.object.http.request.url.path.startsWith('/filed/')).length === 30, 10_000, 50)).toBe(true)
    const requests = filed().filter((e) => e.event_type === 'http_request_complete.v0' && e.object.http.request.url.path.startsWith('/filed/'))
    // fileEvents parses every line: a torn line would have thrown. Each file holds its own worker's events.
    expect(requests.every((e) => e.worker === e.file)).toBe(true)
    expect(new Set(requests.map((e) => e.object.http.request.url.path)).size).toBe(30)
    // Both workers started, so both wrote their start-up reload.
    for (const n of [1, 2]) expect(fileEvents(edge, `events.w${n}.jsonl`).some((e) => e.event_type === 'config_reload.v0' && e.worker === n)).toBe(true)
    expect(fileEvents(edge, 'events.jsonl')).toEqual([])
  })
})
