import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Socket } from 'bun'
import { edgeFlags, startAgent, type AgentProcess } from './framework/agent.ts'
import { memoryOf } from './framework/memory.ts'
import { startEdge, type Edge } from './framework/process.ts'
import { rawRequest, responses } from './framework/raw.ts'

// The HTTP/1.1 engine's byte relay (src/http1/relay.ts): requests to an endpoint whose policy only
// forwards go to the upstream as bytes, and the answer comes back as bytes. Seen from raw sockets on
// both sides, through the compiled binary; `warren_http_relayed_requests_total` proves which path ran.

const KEY = 'e2e-relay-key'

/** Raw upstream: answers by path with exactly the bytes given, and keeps what it received. */
interface UpstreamConn {
  buf: Buffer
  /** Request-body bytes still owed by the request being read (-1: none; -2: chunked, up to `0\r\n\r\n` + trailers). */
  owe: number
  id: number
}
let connections = 0
const received: { headers: string; body: string; conn: number }[] = []
const answers: Record<string, (s: Socket<UpstreamConn>) => void> = {
  '/hello': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: 1\r\n\r\nhello'),
  '/slow': (s) => void setTimeout(() => s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow'), 300),
  '/chunked': (s) =>
    s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n5\r\nabcde\r\n3;ext=1\r\nfgh\r\n0\r\nx-checksum: c0ffee\r\n\r\n'),
  '/head': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/plain\r\n\r\n'),
  '/204': (s) => s.write('HTTP/1.1 204 No Content\r\nX-Empty: 1\r\n\r\n'),
  '/304': (s) => s.write('HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n'),
  '/close-delimited': (s) => {
    s.write('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-')
    setTimeout(() => s.end('the-end'), 50)
  },
  '/early-close': (s) => s.terminate(),
  '/half-head': (s) => {
    s.write('HTTP/1.1 200 OK\r\nContent-Le')
    setTimeout(() => s.end(), 20)
  },
  '/short': (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'),
  '/echo-body': () => {},
  '/silent': () => {},
  '/spoof': (s) => s.write('HTTP/1.1 200 OK\r\nWarren-Error-Code: ERR_WARREN_3200\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok'),
}
const upstream = Bun.listen<UpstreamConn>({
  hostname: '127.0.0.1',
  port: 0,
  socket: {
    open(s) {
      s.data = { buf: Buffer.alloc(0), owe: -1, id: ++connections }
    },
    data(s, d) {
      s.data.buf = Buffer.concat([s.data.buf, d])
      for (;;) {
        const text = s.data.buf.toString('latin1')
        const end = text.indexOf('\r\n\r\n')
        if (end === -1) return
        const head = text.slice(0, end)
        const chunked = /\r\ntransfer-encoding: chunked/i.test(head)
        const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0)
        let bodyEnd = end + 4 + length
        if (chunked) {
          const last = text.indexOf('\r\n0\r\n', end)
          const stop = last === -1 ? -1 : text.indexOf('\r\n\r\n', last + 3)
          if (stop === -1) return
          bodyEnd = stop + 4
        }
        if (text.length < bodyEnd) return
        const body = text.slice(end + 4, bodyEnd)
        s.data.buf = s.data.buf.subarray(bodyEnd)
        received.push({ headers: head, body, conn: s.data.id })
        const path = head.split(' ')[1]!
        if (path === '/echo-body') s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
        else (answers[path] ?? answers['/hello']!)(s)
      }
    },
  },
})

/** An upstream that answers the first request of each connection and drops the connection at the next, as one whose idle close races the edge's reuse. */
let staleConnections = 0
const stale = Bun.listen<{ served: number }>({
  hostname: '127.0.0.1',
  port: 0,
  socket: {
    open(s) {
      s.data = { served: 0 }
      staleConnections++
    },
    data(s) {
      if (s.data.served++ > 0) return void s.terminate()
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh')
    },
  },
})

/** An upstream that streams a body of `size` bytes as fast as the edge takes it. */
const big = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response(new Uint8Array(64 * 1024 * 1024)) })

let edge: Edge
let agentProc: AgentProcess | undefined
beforeAll(async () => {
  const forward = (host: string, port: number, extra = '') =>
    `url: http://${host}.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions:\n${extra}        - {type: forward-external, config: {url: "http://127.0.0.1:${port}"}}\n`
  edge = await startEdge({
    config: `api_keys: [${KEY}]\nhttp:\n  upstream_timeout: 1\naccounts:\n  - name: alice\n    authtokens: [alice-token]\n    domains: ["*.warren.localhost"]\n`,
    policies: {
      'fast.yml': forward('fast', upstream.port),
      'big.yml': forward('big', big.port!),
      'stale.yml': forward('stale', stale.port),
      'other.yml': forward('other', upstream.port, '        - {type: add-headers, config: {headers: {x-endpoint: other}}}\n'),
      // url-rewrite needs the pipeline's exchange (add-headers alone runs on the relay): the pipeline serves this one, for comparison.
      'slow.yml': forward('slow', upstream.port, '        - {type: url-rewrite, config: {from: "^/never$", to: "/x"}}\n'),
    },
  })
})
afterAll(async () => {
  await agentProc?.stop()
  await edge?.stop()
  upstream.stop(true)
  big.stop(true)
  stale.stop(true)
})

async function relayed(): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${edge.apiPort}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })
  const m = /^warren_http_relayed_requests_total (\d+)$/m.exec(await res.text())
  return Number(m?.[1] ?? -1)
}

const F = 'Host: fast.warren.localhost\r\n'


describe('the byte relay (HTTP/1.1 fast path)', () => {
  test('a forward-only endpoint takes the relay; one with url-rewrite takes the pipeline; both answer the same', async () => {
    const before = await relayed()
    const fast = responses(await rawRequest(edge.httpPort, `GET /hello HTTP/1.1\r\n${F}Connection: close\r\n\r\n`))
    expect(await relayed()).toBe(before + 1)
    const slow = responses(await rawRequest(edge.httpPort, 'GET /hello HTTP/1.1\r\nHost: slow.warren.localhost\r\nConnection: close\r\n\r\n'))
    expect(await relayed()).toBe(before + 1)
    expect(fast[0]).toMatchObject({ status: 200, body: 'hello' })
    expect(slow[0]).toMatchObject({ status: 200, body: 'hello' })
    for (const r of [fast[0]!, slow[0]!]) {
      expect(r.headers).toMatch(/\r\nx-up: 1\r\n/i)
      expect(r.headers).toMatch(/\r\ndate: /i)
      expect(r.headers).toMatch(/\r\nconnection: close/i)
    }
    // What the upstream saw: the client's Host, X-Forwarded-*, no hop-by-hop fields.
    const head = received.at(-2)!.headers
    expect(head).toStartWith('GET /hello HTTP/1.1\r\n')
    expect(head).toMatch(/\r\nHost: fast\.warren\.localhost\r\n/)
    expect(head).toMatch(/\r\nx-forwarded-for: 127\.0\.0\.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: fast\.warren\.localhost(\r\n|$)/)
    expect(head).not.toMatch(/\r\nconnection:/i)
  })

  test('keep-alive on both sides: sequential requests on one client connection reuse one upstream connection', async () => {
    await rawRequest(edge.httpPort, `GET /hello HTTP/1.1\r\n${F}\r\n`, 100)
    const opened = connections
    const text = await new Promise<string>((resolve) => {
      let out = ''
      let n = 0
      void Bun.connect({
        hostname: '127.0.0.1',
        port: edge.httpPort,
        socket: {
          open: (s) => void s.write(`GET /hello HTTP/1.1\r\n${F}\r\n`),
          data(s, d) {
            out += d.toString('latin1')
            if (responses(out).length === ++n && n < 5) s.write(`GET /hello HTTP/1.1\r\n${F}\r\n`)
            if (responses(out).length === 5) s.end()
          },
          close: () => resolve(out),
        },
      })
    })
    expect(responses(text).map((r) => r.body)).toEqual(['hello', 'hello', 'hello', 'hello', 'hello'])
    expect(connections).toBe(opened)
  })

  test('pipelined requests are answered in order, a slow first one included', async () => {
    const text = await rawRequest(edge.httpPort, `GET /slow HTTP/1.1\r\n${F}\r\nGET /hello HTTP/1.1\r\n${F}\r\nGET /echo-body HTTP/1.1\r\n${F}Connection: close\r\n\r\n`, 3000)
    expect(responses(text).map((r) => [r.status, r.body])).toEqual([
      [200, 'slow'],
      [200, 'hello'],
      [200, ''],
    ])
  })

  test('pipelined requests that alternate between the relay and the pipeline keep their order', async () => {
    const S = 'Host: slow.warren.localhost\r\n'
    const before = await relayed()
    const text = await rawRequest(edge.httpPort, `GET /slow HTTP/1.1\r\n${S}\r\nGET /hello HTTP/1.1\r\n${F}\r\nGET /chunked HTTP/1.1\r\n${S}\r\nGET /slow HTTP/1.1\r\n${F}Connection: close\r\n\r\n`, 3000)
    expect(responses(text).map((r) => [r.status, r.body])).toEqual([
      [200, 'slow'],
      [200, 'hello'],
      [200, 'abcdefgh'],
      [200, 'slow'],
    ])
    expect(await relayed()).toBe(before + 2)
  })

  test('a chunked response passes through as sent: chunk sizes, extensions and trailers', async () => {
    const text = await rawRequest(edge.httpPort, `GET /chunked HTTP/1.1\r\n${F}TE: trailers\r\nConnection: TE, close\r\n\r\n`)
    // TE is hop-by-hop, as on the pipeline: the upstream sends its trailers or not, and they pass.
    expect(received.at(-1)!.headers).not.toMatch(/\r\nte:/i)
    const end = text.indexOf('\r\n\r\n')
    expect(text.slice(0, end)).toMatch(/\r\ntransfer-encoding: chunked/i)
    expect(text.slice(end + 4)).toBe('5\r\nabcde\r\n3;ext=1\r\nfgh\r\n0\r\nx-checksum: c0ffee\r\n\r\n')
  })

  test('a chunked request body reaches the upstream byte for byte, trailers included', async () => {
    const body = '4\r\nwxyz\r\n2;a=b\r\n12\r\n0\r\nx-sum: 9\r\n\r\n'
    const text = await rawRequest(edge.httpPort, `POST /echo-body HTTP/1.1\r\n${F}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n${body}`)
    expect(responses(text)[0]).toMatchObject({ status: 200, body })
    expect(received.at(-1)!.headers).toMatch(/\r\ntransfer-encoding: chunked$/)
  })

  test('HEAD keeps the length a GET would have; 204 and 304 have no body; the connection stays in step', async () => {
    const text = await rawRequest(
      edge.httpPort,
      `HEAD /head HTTP/1.1\r\n${F}\r\nGET /204 HTTP/1.1\r\n${F}\r\nGET /304 HTTP/1.1\r\n${F}\r\nGET /hello HTTP/1.1\r\n${F}Connection: close\r\n\r\n`,
      2000,
    )
    const [head, noContent, notModified, hello] = responses(text, (i) => i === 0)
    expect(head!.status).toBe(200)
    expect(head!.headers).toMatch(/\r\ncontent-length: 1234/i)
    expect(noContent!.status).toBe(204)
    expect(noContent!.headers).toMatch(/\r\nx-empty: 1/i)
    expect(noContent!.headers).not.toMatch(/content-length|transfer-encoding/i)
    expect(notModified!.status).toBe(304)
    expect(notModified!.headers).toMatch(/\r\netag: "v1"/i)
    expect(hello).toMatchObject({ status: 200, body: 'hello' })
  })

  test('one connection whose requests name different hosts: each goes to its own endpoint (the route is kept per connection only for the same Host)', async () => {
    const before = await relayed()
    const seen = received.length
    const O = 'Host: OTHER.warren.localhost\r\n'
    const text = await rawRequest(edge.httpPort, `GET /hello HTTP/1.1\r\n${F}\r\nGET /hello HTTP/1.1\r\n${O}\r\nGET /hello HTTP/1.1\r\nHost: nowhere.warren.localhost\r\n\r\nGET /hello HTTP/1.1\r\n${F}Connection: close\r\n\r\n`, 3000)
    expect(responses(text).map((r) => [r.status, r.body])).toEqual([
      [200, 'hello'],
      [200, 'hello'],
      [404, expect.any(String)],
      [200, 'hello'],
    ])
    // other.yml adds a header, so the upstream can tell which endpoint each request went through.
    expect(received.slice(seen).map((r) => /\r\nx-endpoint: (\w+)/.exec(r.headers)?.[1] ?? 'fast')).toEqual(['fast', 'other', 'fast'])
    expect(await relayed()).toBe(before + 3)
  })

  test('an Expect other than 100-continue is refused with 417 and nothing reaches the upstream; 100-continue in any case is taken', async () => {
    const seen = received.length
    const [refused] = responses(await rawRequest(edge.httpPort, `GET /hello HTTP/1.1\r\n${F}Expect: 200-ok\r\n\r\n`, 3000))
    expect(refused).toMatchObject({ status: 417 })
    expect(refused!.headers).toMatch(/\r\nwarren-error-code: ERR_WARREN_\d{4}\r\n/i)
    expect(refused!.headers).toMatch(/\r\nconnection: close/i)
    const [twice] = responses(await rawRequest(edge.httpPort, `GET /hello HTTP/1.1\r\n${F}Expect: 100-continue\r\nExpect: 100-continue\r\n\r\n`, 3000))
    expect(twice).toMatchObject({ status: 417 })
    expect(received.length).toBe(seen)
    const [taken] = responses(await rawRequest(edge.httpPort, `GET /hello HTTP/1.1\r\n${F}EXPECT: 100-Continue\r\nConnection: close\r\n\r\n`, 3000))
    expect(taken).toMatchObject({ status: 200, body: 'hello' })
  })

  test('Expect: 100-continue: the edge answers 100, the body follows, the upstream never sees Expect', async () => {
    const text = await new Promise<string>((resolve) => {
      let out = ''
      void Bun.connect({
        hostname: '127.0.0.1',
        port: edge.httpPort,
        socket: {
          open: (s) => void s.write(`POST /echo-body HTTP/1.1\r\n${F}Content-Length: 7\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`),
          data(s, d) {
            const first = out === ''
            out += d.toString('latin1')
            if (first && out.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) s.write('payload')
          },
          close: () => resolve(out),
        },
      })
    })
    expect(text).toStartWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ')
    expect(responses(text.slice(25))[0]!.body).toBe('payload')
    expect(received.at(-1)!.headers).not.toMatch(/expect/i)
  })

  test('a close-delimited upstream body reaches an HTTP/1.1 client chunked, whole', async () => {
    const text = await rawRequest(edge.httpPort, `GET /close-delimited HTTP/1.1\r\n${F}Connection: close\r\n\r\n`, 2000)
    const end = text.indexOf('\r\n\r\n')
    expect(text.slice(0, end)).toMatch(/\r\ntransfer-encoding: chunked/i)
    expect(text.slice(end + 4)).toBe('6\r\nuntil-\r\n7\r\nthe-end\r\n0\r\n\r\n')
  })

  test('an upstream that closes early gets the same 502 page and code as on the pipeline', async () => {
    for (const path of ['/early-close', '/half-head']) {
      const fast = responses(await rawRequest(edge.httpPort, `GET ${path} HTTP/1.1\r\n${F}Accept: application/json\r\nConnection: close\r\n\r\n`, 1500))[0]!
      const slow = responses(await rawRequest(edge.httpPort, `GET ${path} HTTP/1.1\r\nHost: slow.warren.localhost\r\nAccept: application/json\r\nConnection: close\r\n\r\n`, 1500))[0]!
      expect(fast.status).toBe(502)
      const code = /\r\nwarren-error-code: (\S+)/i.exec(fast.headers)?.[1]
      expect(code).toBe(path === '/early-close' ? 'ERR_WARREN_8012' : 'ERR_WARREN_3004')
      expect(/\r\nwarren-error-code: (\S+)/i.exec(slow.headers)?.[1]).toBe(code!)
      expect(fast.body).toBe(slow.body)
    }
  })

  test('a reused upstream connection that dies unanswered: retried once for an idempotent or Idempotency-Key request, never for another POST', async () => {
    const S = 'Host: stale.warren.localhost\r\nConnection: close\r\n'
    const before = await relayed()
    expect(responses(await rawRequest(edge.httpPort, `GET / HTTP/1.1\r\n${S}\r\n`))[0]).toMatchObject({ status: 200, body: 'fresh' })
    expect(staleConnections).toBe(1)
    // The pooled connection dies at this request; it has no body and a key, so it goes out again on a new one.
    const keyed = responses(await rawRequest(edge.httpPort, `POST /pay HTTP/1.1\r\n${S}Idempotency-Key: k-1\r\nContent-Length: 0\r\n\r\n`, 1500))[0]!
    expect(keyed).toMatchObject({ status: 200, body: 'fresh' })
    expect(staleConnections).toBe(2)
    // Without a key the same POST may have been acted on: the client gets the 502, nothing is sent twice.
    const plain = responses(await rawRequest(edge.httpPort, `POST /pay HTTP/1.1\r\n${S}Content-Length: 0\r\n\r\n`, 1500))[0]!
    expect(plain.status).toBe(502)
    expect(/\r\nwarren-error-code: (\S+)/i.exec(plain.headers)?.[1]).toBe('ERR_WARREN_8012')
    expect(staleConnections).toBe(2)
    expect(await relayed()).toBe(before + 3)
  })

  test('an upstream that closes inside its body: the client gets what came and the connection is cut, never a clean end', async () => {
    const text = await rawRequest(edge.httpPort, `GET /short HTTP/1.1\r\n${F}\r\nGET /hello HTTP/1.1\r\n${F}\r\n`, 1500)
    expect(text).toStartWith('HTTP/1.1 200 OK\r\n')
    expect(text).toMatch(/\r\ncontent-length: 10\r\n/i)
    expect(text).toEndWith('\r\n\r\nabc')
  })

  test('an upstream that never answers: 504 with ERR_WARREN_3005 once upstream_timeout passes, not before', async () => {
    const before = await relayed()
    const started = performance.now()
    const [r] = responses(await rawRequest(edge.httpPort, `GET /silent HTTP/1.1\r\n${F}Connection: close\r\n\r\n`, 5000))
    const took = performance.now() - started
    expect(await relayed()).toBe(before + 1)
    expect(r!.status).toBe(504)
    expect(/\r\nwarren-error-code: (\S+)/i.exec(r!.headers)?.[1]).toBe('ERR_WARREN_3005')
    expect(took).toBeGreaterThan(950)
    expect(took).toBeLessThan(3000)
  })

  test('an upstream cannot set Warren-Error-Code or hop-by-hop fields through the relay', async () => {
    const [r] = responses(await rawRequest(edge.httpPort, `GET /spoof HTTP/1.1\r\n${F}Connection: close\r\n\r\n`))
    expect(r).toMatchObject({ status: 200, body: 'ok' })
    expect(r!.headers).not.toMatch(/warren-error-code|keep-alive/i)
  })

  test('a client that never reads a 64 MiB response keeps the edge within a bounded growth', async () => {
    const idle = memoryOf(edge.proc.pid).rss
    let peak = idle
    const socket = await Bun.connect({ hostname: '127.0.0.1', port: edge.httpPort, socket: { data() {}, close() {} } })
    socket.pause()
    const before = await relayed()
    socket.write('GET / HTTP/1.1\r\nHost: big.warren.localhost\r\n\r\n')
    for (let i = 0; i < 20; i++) {
      await Bun.sleep(100)
      peak = Math.max(peak, memoryOf(edge.proc.pid).rss)
    }
    expect(await relayed()).toBe(before + 1)
    socket.terminate()
    console.log(`unread 64 MiB response through the relay: edge grew ${((peak - idle) / 1024 ** 2).toFixed(1)} MB`)
    expect(peak - idle).toBeLessThan(24 * 1024 ** 2)
  }, 30_000)

  test('an agent endpoint is relayed over its muxado stream', async () => {
    agentProc = startAgent(['http', String(upstream.port), '--url', 'http://agent-relay.warren.localhost', ...edgeFlags(edge, 'alice-token')])
    await agentProc.forwarding()
    const before = await relayed()
    const text = await rawRequest(edge.httpPort, 'GET /hello HTTP/1.1\r\nHost: agent-relay.warren.localhost\r\n\r\nPOST /echo-body HTTP/1.1\r\nHost: agent-relay.warren.localhost\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc', 3000)
    expect(responses(text).map((r) => [r.status, r.body])).toEqual([
      [200, 'hello'],
      [200, 'abc'],
    ])
    expect(await relayed()).toBe(before + 2)
  }, 30_000)
})
