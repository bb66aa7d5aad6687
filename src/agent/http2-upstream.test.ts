import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import * as http2 from 'node:http2'
import { opensslCert, recordingLogger } from '../certs/testing.ts'
import { MuxSession, type MuxStream } from '../tunnel/mux.ts'
import { FileServers } from './forward.ts'
import { forwardHttp2, h2RequestHeaders, Http2Sessions } from './http2-upstream.ts'
import { parseRequestHead } from './request-head.ts'
import { parseUpstream } from './upstream.ts'

// A real h2c upstream on loopback (it speaks only HTTP/2: an HTTP/1.1 request would fail), and the
// agent's bridge fed HTTP/1.1 through a real muxado stream pair, as the edge sends it.
const seen: { version: string; method: string; authority: string; te: string | undefined; body: string; session: number }[] = []
const sessionIds = new WeakMap<object, number>()
let sessions = 0
const server = http2.createServer()
server.on('session', (s) => sessionIds.set(s, ++sessions))
server.on('request', (req, res) => {
  if (req.url === '/early') return void res.writeHead(413, { 'content-length': '4' }).end('big!')
  // Read now: a stream forgets its session once it is closed.
  const session = req.stream.session
  let body = ''
  req.setEncoding('utf8')
  req.on('data', (c: string) => (body += c))
  req.on('end', () => {
    seen.push({ version: req.httpVersion, method: req.method, authority: req.authority, te: req.headers.te as string | undefined, body, session: (session && sessionIds.get(session)) || 0 })
    if (req.url === '/close-session') {
      res.end('bye')
      setTimeout(() => session?.close(), 10)
      return
    }
    if (req.url === '/length') {
      res.writeHead(201, { 'content-length': String(body.length), 'x-kind': 'length' })
      return res.end(body)
    }
    res.writeHead(200, { 'content-type': 'application/grpc', 'set-cookie': ['a=1', 'b=2'] })
    res.addTrailers({ 'grpc-status': '0', 'grpc-message': 'ok' })
    res.end(`echo:${body}`)
  })
})
let port = 0
const log = recordingLogger()
const h2 = new Http2Sessions()
const files = new FileServers()

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  port = (server.address() as { port: number }).port
})
afterAll(() => {
  h2.dispose()
  files.dispose()
  server.close()
})

/** An edge-side stream whose agent side runs forwardHttp2 to `upstream`. */
function tunnel(upstream: string): { edge: MuxStream; received: () => string; closed: Promise<void> } {
  let agentSide!: MuxSession
  const edgeSide = new MuxSession(
    { write: (b) => (queueMicrotask(() => agentSide.feed(b.slice())), b.length), end() {}, terminate() {} },
    { onStream() {}, onClose() {} },
  )
  agentSide = new MuxSession(
    { write: (b) => (queueMicrotask(() => edgeSide.feed(b.slice())), b.length), end() {}, terminate() {} },
    {
      onStream(stream) {
        forwardHttp2(stream, new Uint8Array(0), { endpoint: 'https://t.test', kind: 'http', upstream: parseUpstream(upstream, { endpoint: 'http' }), files, log, clientAddr: '127.0.0.1:1', sessions: h2 })
      },
      onClose() {},
    },
    { role: 'client' },
  )
  const edge = edgeSide.open()!
  let text = ''
  edge.ondata = (c) => (text += new TextDecoder('latin1').decode(c))
  // The agent's FIN ends the answer (the edge then closes its side too).
  const closed = new Promise<void>((r) => {
    edge.onend = () => {
      edge.end()
      r()
    }
    edge.onclose = r
  })
  return { edge, received: () => text, closed }
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out')
    await Bun.sleep(5)
  }
}

const enc = (s: string) => new TextEncoder().encode(s)

describe('forwardHttp2()', () => {
  test('a request with TE: trailers gets the body chunked and the trailers as chunked trailer fields', async () => {
    const t = tunnel(`127.0.0.1:${port}`)
    t.edge.write(enc('POST /pkg.Svc/Call HTTP/1.1\r\nhost: api.example.com\r\nte: trailers\r\ncontent-type: application/grpc\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello'))
    await t.closed
    const text = t.received()
    expect(text).toStartWith('HTTP/1.1 200 OK\r\n')
    expect(text).toContain('transfer-encoding: chunked\r\n')
    expect(text).toContain('set-cookie: a=1\r\nset-cookie: b=2\r\n')
    expect(text).toEndWith('\r\n0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n')
    expect(text).toContain('\r\n\r\na\r\necho:hello\r\n')
    expect(seen.at(-1)).toMatchObject({ version: '2.0', method: 'POST', authority: 'api.example.com', te: 'trailers', body: 'hello' })
  })

  test('without TE: trailers the trailers are dropped; keep-alive requests share one HTTP/2 session', async () => {
    const t = tunnel(`127.0.0.1:${port}`)
    t.edge.write(enc('POST /a HTTP/1.1\r\nhost: h.test\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'))
    await until(() => t.received().endsWith('0\r\n\r\n'))
    t.edge.write(enc('POST /length HTTP/1.1\r\nhost: h.test\r\ncontent-length: 3\r\n\r\nxyz'))
    await until(() => t.received().endsWith('xyz'))
    t.edge.end()
    await t.closed
    const text = t.received()
    expect(text).not.toContain('grpc-status')
    expect(text).toContain('HTTP/1.1 201 Created\r\n')
    expect(text).toContain('content-length: 3\r\n')
    const [a, b] = seen.slice(-2)
    expect(a).toMatchObject({ body: 'abc', te: undefined })
    expect(b).toMatchObject({ body: 'xyz' })
    expect(a!.session).toBe(b!.session)
  })

  test('a session the upstream closed is reopened for the next request', async () => {
    const t = tunnel(`127.0.0.1:${port}`)
    t.edge.write(enc('GET /close-session HTTP/1.1\r\nhost: h.test\r\n\r\n'))
    await until(() => t.received().endsWith('bye\r\n0\r\n\r\n'))
    const before = seen.at(-1)!.session
    await Bun.sleep(100)
    t.edge.write(enc('GET /again HTTP/1.1\r\nhost: h.test\r\nconnection: close\r\n\r\n'))
    await t.closed
    expect(t.received()).toContain('echo:')
    expect(seen.at(-1)!.session).toBeGreaterThan(before)
  })

  test('an answer before the request body is complete closes the connection after it', async () => {
    const before = seen.length
    const t = tunnel(`127.0.0.1:${port}`)
    t.edge.write(enc('POST /early HTTP/1.1\r\nhost: h.test\r\ncontent-length: 100000\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n'))
    await t.closed
    expect(t.received()).toStartWith('HTTP/1.1 413 Payload Too Large\r\n')
    expect(t.received()).toEndWith('big!')
    // The unread body is never taken for a request of its own.
    await Bun.sleep(50)
    expect(seen.length).toBe(before)
  })

  test('an unreachable upstream gets the 502 page of HTTP/1 upstreams', async () => {
    const t = tunnel('127.0.0.1:1')
    t.edge.write(enc('GET / HTTP/1.1\r\nhost: h.test\r\naccept: application/json\r\n\r\n'))
    await t.closed
    const text = t.received()
    expect(text).toStartWith('HTTP/1.1 502 Bad Gateway\r\n')
    expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)).error.code).toBe('ERR_WARREN_8012')
    expect(log.lines.some((l) => l.msg === 'upstream unreachable' && l.fields.error === 'connection refused')).toBe(true)
  })

  test('a websocket upgrade is answered 501', async () => {
    const t = tunnel(`127.0.0.1:${port}`)
    t.edge.write(enc('GET /ws HTTP/1.1\r\nhost: h.test\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n'))
    await t.closed
    expect(t.received()).toStartWith('HTTP/1.1 501 Not Implemented\r\n')
  })
})

describe('forwardHttp2() to an https:// upstream', () => {
  const pair = opensslCert(['DNS:localhost'])
  const secure = http2.createSecureServer({ cert: pair.cert, key: pair.key }, (req, res) => res.end(`alpn=${(req.socket as { alpnProtocol?: string }).alpnProtocol} v=${req.httpVersion}`))
  beforeAll(() => new Promise<void>((r) => secure.listen(0, '127.0.0.1', r)))
  afterAll(() => void secure.close())

  test('speaks TLS with ALPN h2 and does not verify a self-signed certificate by default', async () => {
    const t = tunnel(`https://127.0.0.1:${(secure.address() as { port: number }).port}`)
    t.edge.write(enc('GET / HTTP/1.1\r\nhost: s.test\r\nconnection: close\r\n\r\n'))
    await t.closed
    expect(t.received()).toStartWith('HTTP/1.1 200 OK\r\n')
    expect(t.received()).toContain('alpn=h2 v=2.0')
  })
})

describe('h2RequestHeaders()', () => {
  const up = parseUpstream('https://10.0.0.1:8443', { endpoint: 'http' }) as Exclude<ReturnType<typeof parseUpstream>, { kind: 'file' }>
  test.each([
    {
      desc: 'Host becomes :authority; hop-by-hop fields go',
      head: 'GET /p?q=1 HTTP/1.1\r\nHost: a.test\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nX-Keep: yes\r\n\r\n',
      want: { ':method': 'GET', ':scheme': 'https', ':authority': 'a.test', ':path': '/p?q=1', 'x-keep': 'yes' },
      absent: ['host', 'connection', 'x-hop', 'keep-alive'],
    },
    { desc: 'cookies are joined with "; "', head: 'GET / HTTP/1.1\r\nhost: a\r\ncookie: a=1\r\ncookie: b=2\r\n\r\n', want: { cookie: 'a=1; b=2' }, absent: [] },
    { desc: 'absolute-form wins over Host', head: 'GET http://b.test:81/x HTTP/1.1\r\nhost: a\r\n\r\n', want: { ':authority': 'b.test:81', ':path': '/x' }, absent: [] },
    { desc: 'gRPC gets te: trailers', head: 'POST /s/M HTTP/1.1\r\nhost: a\r\ncontent-type: application/grpc+proto\r\n\r\n', want: { te: 'trailers' }, absent: [] },
    { desc: 'no Host: the upstream address', head: 'GET / HTTP/1.1\r\n\r\n', want: { ':authority': '10.0.0.1:8443' }, absent: [] },
  ])('$desc', ({ head, want, absent }) => {
    const h = h2RequestHeaders(parseRequestHead(head), up)
    expect(h).toMatchObject(want)
    for (const name of absent) expect(h[name]).toBeUndefined()
  })
})
