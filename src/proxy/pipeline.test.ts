import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { parseEndpointUrl } from '../config/url.ts'
import type { Endpoint, TunnelTarget } from '../endpoints/endpoint.ts'
import { EndpointStore } from '../endpoints/store.ts'
import { configureLogging, log } from '../lib/log.ts'
import { EMPTY_POLICY } from '../policy/engine.ts'
import { MuxSession, type MuxStream } from '../tunnel/mux.ts'
import { MuxError } from '../tunnel/proto/frame.ts'
import { encodeProxyHeader } from '../tunnel/proto/messages.ts'
import { createPipeline } from './pipeline.ts'
import { MAX_REPLAY_BODY, PoolRetryStats } from './pool-retry.ts'
import type { RequestSource } from './websocket.ts'

/** The requests come from no server: the client address comes from `clientAddress`. */
const NO_SOURCE: RequestSource = { requestIP: () => null, upgrade: () => false }

// The pipeline's pool retry over real muxado sessions (edge and agent ends wired in memory): each
// agent either answers, refuses every stream (RST StreamRefused), or drops its whole session once
// it has read a request, as a killed agent does.

type Behavior = 'answer' | 'refuse' | 'vanish'

interface FakeAgent {
  name: string
  endpoint: Endpoint
  /** Requests the agent read whole: method, path and body length. */
  seen: { method: string; path: string; body: number }[]
  edge: MuxSession
}

/** Joins two sessions: what one writes, the other is fed on a later microtask (as a socket would). */
function wire(): { edge: MuxSession; agent: (onStream: (s: MuxStream) => void) => MuxSession } {
  let agentSide: MuxSession | undefined
  const edge = new MuxSession(
    {
      write(b) {
        const copy = b.slice()
        queueMicrotask(() => agentSide?.feed(copy))
        return b.length
      },
      end() {},
      terminate() {},
    },
    { onStream: () => {}, onClose: () => {} },
  )
  return {
    edge,
    agent(onStream) {
      agentSide = new MuxSession(
        {
          write(b) {
            const copy = b.slice()
            queueMicrotask(() => edge.feed(copy))
            return b.length
          },
          end() {},
          terminate() {},
        },
        { onStream, onClose: () => {} },
        { role: 'client' },
      )
      return agentSide
    },
  }
}

function fakeAgent(name: string, behavior: Behavior): FakeAgent {
  const { edge, agent } = wire()
  const seen: FakeAgent['seen'] = []
  agent((stream) => {
    if (behavior === 'refuse') return stream.terminate(MuxError.STREAM_REFUSED)
    let buf = Buffer.alloc(0)
    stream.ondata = (chunk) => {
      buf = Buffer.concat([buf, chunk])
      const text = buf.toString('latin1')
      const end = text.indexOf('\r\n\r\n')
      if (end === -1) return
      const line = /(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (\S+) HTTP\/1\.1/.exec(text)!
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? 0)
      const body = buf.length - Buffer.byteLength(text.slice(0, end + 4), 'latin1')
      if (body < length) return
      buf = Buffer.alloc(0)
      seen.push({ method: line[1]!, path: line[2]!, body })
      // A killed agent: its connection goes, taking every stream with it, without an answer.
      if (behavior === 'vanish') return void queueMicrotask(() => edge.transportClosed())
      stream.write(new TextEncoder().encode(`HTTP/1.1 200 OK\r\ncontent-length: ${name.length}\r\n\r\n${name}`))
    }
  })
  const tunnel: TunnelTarget = {
    proxyProtocol: 0,
    get online() {
      return !edge.closed
    },
    async connect(clientAddr) {
      const stream = edge.open()
      stream?.write(encodeProxyHeader({ Id: name, ClientAddr: clientAddr, Proto: 'http', EdgeType: '1', PassthroughTLS: false }))
      return stream
    },
  }
  const url = parseEndpointUrl('http://pool.example.com')
  const endpoint: Endpoint = {
    id: `ep_${name}`,
    kind: 'agent',
    url,
    urlText: 'http://pool.example.com',
    port: 80,
    account: 'default',
    poolingEnabled: true,
    source: `agent ${name}`,
    position: { line: 0, col: 0 },
    description: undefined,
    metadata: undefined,
    policy: EMPTY_POLICY,
    tunnel,
    info: { id: `ep_${name}`, url: 'http://pool.example.com', scheme: 'http', host: 'pool.example.com', port: 80, binding: 'public' },
  }
  return { name, endpoint, seen, edge }
}

/** A pipeline over a pool of the given agents; the first request goes to the first online one. */
function poolOf(...agents: FakeAgent[]) {
  const store = new EndpointStore()
  store.setAgentEndpoints(agents.map((a) => a.endpoint))
  const stats = new PoolRetryStats()
  const handle = createPipeline({
    store,
    scheme: 'http',
    defaultPort: 80,
    serverIp: '127.0.0.1',
    serverPort: 80,
    upstreamTimeoutMs: 5000,
    maxHeaderBytes: 16 * 1024,
    log,
    logRequests: false,
    clientAddress: () => ({ address: '127.0.0.1', port: 1 }),
    poolRetries: stats,
  })
  const send = async (method: string, body?: Uint8Array) => {
    const headers: Record<string, string> = { host: 'pool.example.com' }
    if (body) headers['content-length'] = String(body.length)
    const res = await handle(new Request('http://pool.example.com/p', { method, headers, ...(body ? { body } : {}) }), NO_SOURCE)
    return { status: res.status, text: await res.text() }
  }
  return { send, stats }
}

beforeAll(() => configureLogging({ level: 'error' }))
afterAll(() => configureLogging({ level: 'info' }))

describe('createPipeline(): a pooled agent that fails before answering', () => {
  test('a refused stream proves the request never arrived: even a POST goes to the other member, body intact', async () => {
    const a = fakeAgent('A', 'refuse')
    const b = fakeAgent('B', 'answer')
    const { send, stats } = poolOf(a, b)
    const res = await send('POST', new Uint8Array(5000).fill(7))
    expect(res).toEqual({ status: 200, text: 'B' })
    expect(b.seen).toEqual([{ method: 'POST', path: '/p', body: 5000 }])
    expect(stats.entries()).toEqual([{ endpoint: 'http://pool.example.com', reason: 'stream refused', count: 1 }])
  })

  test('a GET whose agent vanished after reading it is retried on the other member', async () => {
    const a = fakeAgent('A', 'vanish')
    const b = fakeAgent('B', 'answer')
    const { send, stats } = poolOf(a, b)
    expect(await send('GET')).toEqual({ status: 200, text: 'B' })
    expect(a.seen.length).toBe(1)
    expect(b.seen.length).toBe(1)
    expect(stats.entries()).toEqual([{ endpoint: 'http://pool.example.com', reason: 'session closed', count: 1 }])
  })

  test('a POST whose agent vanished after reading it is not sent again (it may have reached the upstream)', async () => {
    const a = fakeAgent('A', 'vanish')
    const b = fakeAgent('B', 'answer')
    const { send, stats } = poolOf(a, b)
    expect((await send('POST', new TextEncoder().encode('order=1'))).status).toBe(502)
    expect(a.seen.length).toBe(1)
    expect(b.seen).toEqual([])
    expect(stats.entries()).toEqual([])
  })

  test(`a body over ${MAX_REPLAY_BODY} bytes is not retried, even when the stream was refused`, async () => {
    const a = fakeAgent('A', 'refuse')
    const b = fakeAgent('B', 'answer')
    const { send, stats } = poolOf(a, b)
    expect((await send('POST', new Uint8Array(MAX_REPLAY_BODY + 1))).status).toBe(502)
    expect(b.seen).toEqual([])
    expect(stats.entries()).toEqual([])
  })

  test('a member whose session already closed gets no request at all (no failure, no retry)', async () => {
    const a = fakeAgent('A', 'answer')
    const b = fakeAgent('B', 'answer')
    a.edge.transportClosed()
    const { send, stats } = poolOf(a, b)
    for (let i = 0; i < 3; i++) expect(await send('GET')).toEqual({ status: 200, text: 'B' })
    expect(stats.entries()).toEqual([])
  })

  test('one retry at most: when both members fail, the client gets the 502', async () => {
    const a = fakeAgent('A', 'vanish')
    const b = fakeAgent('B', 'vanish')
    const c = fakeAgent('C', 'answer')
    const { send, stats } = poolOf(a, b, c)
    expect((await send('GET')).status).toBe(502)
    expect(c.seen).toEqual([])
    expect(stats.entries()[0]?.count).toBe(1)
  })

  test('a lone endpoint (no pool) is never retried', async () => {
    const a = fakeAgent('A', 'refuse')
    const { send, stats } = poolOf(a)
    expect((await send('GET')).status).toBe(502)
    expect(stats.entries()).toEqual([])
  })
})
