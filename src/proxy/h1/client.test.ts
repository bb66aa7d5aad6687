import { afterAll, afterEach, describe, expect, test } from 'bun:test'
import { CODES, WarrenError } from '../../lib/errors.ts'
import { readyBody } from '../../lib/ready-body.ts'
import { h1Request, UpstreamRefused, type H1RequestInit } from './client.ts'
import { H1ParseError } from './parse.ts'
import { H1Pool, originOf } from './pool.ts'
import { digestStream, patternStream, rawUpstream, type RawUpstream } from './test-upstream.ts'

const pools: H1Pool[] = []
const raws: RawUpstream[] = []
const servers: ReturnType<typeof Bun.serve>[] = []

afterEach(() => {
  for (const p of pools.splice(0)) p.close()
  for (const r of raws.splice(0)) r.stop()
})
afterAll(() => {
  for (const s of servers.splice(0)) s.stop(true)
})

function newPool(): H1Pool {
  const pool = new H1Pool()
  pools.push(pool)
  return pool
}

function raw(respond: Parameters<typeof rawUpstream>[0]): RawUpstream {
  const r = rawUpstream(respond)
  raws.push(r)
  return r
}

function init(port: number, extra: Partial<H1RequestInit> = {}): H1RequestInit {
  return {
    origin: originOf(new URL(`http://127.0.0.1:${port}`)),
    method: 'GET',
    target: '/',
    headers: new Headers({ host: 'app.test' }),
    body: null,
    timeoutMs: 5000,
    ...extra,
  }
}

async function failure(p: Promise<unknown>): Promise<WarrenError> {
  try {
    await p
  } catch (err) {
    expect(err).toBeInstanceOf(WarrenError)
    return err as WarrenError
  }
  throw new Error('expected the request to fail')
}

/** Bun.serve upstream that echoes what it saw and serves a few fixed bodies. */
const echo = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  maxRequestBodySize: 1024 ** 3,
  async fetch(req, server) {
    const url = new URL(req.url)
    const port = server.requestIP(req)?.port
    if (url.pathname === '/upload') {
      const { hex, bytes } = req.body ? await digestStream(req.body) : { hex: '', bytes: 0 }
      return Response.json({ hex, bytes, te: req.headers.get('transfer-encoding'), cl: req.headers.get('content-length') })
    }
    if (url.pathname === '/big') return new Response(patternStream(Number(url.searchParams.get('n'))))
    if (url.pathname === '/fixed') return new Response('x'.repeat(Number(url.searchParams.get('n'))))
    const seen: Record<string, string> = {}
    req.headers.forEach((v, k) => (seen[k] = v))
    return Response.json({ method: req.method, url: url.pathname + url.search, headers: seen, port }, { headers: { 'x-up': '1' } })
  },
})
servers.push(echo)

describe('h1Request() against Bun.serve', () => {
  test('sends method, target and headers as given, Host included', async () => {
    const headers = new Headers({ host: 'app.test', 'x-a': 'b', accept: 'text/plain' })
    const res = await h1Request(newPool(), init(echo.port!, { target: '/p/a%20th?q=1&r', headers, method: 'DELETE' }))
    expect(res.status).toBe(200)
    expect(res.headers.get('x-up')).toBe('1')
    const body = (await res.json()) as { method: string; url: string; headers: Record<string, string> }
    expect(body.method).toBe('DELETE')
    expect(body.url).toBe('/p/a%20th?q=1&r')
    expect(body.headers.host).toBe('app.test')
    expect(body.headers['x-a']).toBe('b')
  })

  test('adds Host from the origin when the caller has none', async () => {
    const res = await h1Request(newPool(), init(echo.port!, { headers: new Headers() }))
    expect(((await res.json()) as { headers: Record<string, string> }).headers.host).toBe(`127.0.0.1:${echo.port}`)
  })

  test.each([0, 1, 1000, 12 * 1024, 12 * 1024 + 1, 64 * 1024, 3 * 1024 * 1024])('Content-Length body of %i bytes', async (n) => {
    const res = await h1Request(newPool(), init(echo.port!, { target: `/fixed?n=${n}` }))
    expect(res.headers.get('content-length')).toBe(String(n))
    const text = await res.text()
    expect(text.length).toBe(n)
    expect(text).toBe('x'.repeat(n))
  })

  test('keep-alive: sequential requests reuse one connection', async () => {
    const pool = newPool()
    const ports = new Set<number>()
    for (let i = 0; i < 20; i++) {
      const res = await h1Request(pool, init(echo.port!))
      ports.add(((await res.json()) as { port: number }).port)
    }
    expect(ports.size).toBe(1)
    expect(pool.opened).toBe(1)
  })

  test('keep-alive: concurrent requests open one connection each, then reuse them', async () => {
    const pool = newPool()
    const burst = () => Promise.all(Array.from({ length: 8 }, () => h1Request(pool, init(echo.port!)).then((r) => r.text())))
    await burst()
    expect(pool.opened).toBe(8)
    await burst()
    await burst()
    expect(pool.opened).toBe(8)
    expect(pool.idleCount(`127.0.0.1:${echo.port}`)).toBe(8)
  })

  test('keeps at most maxIdlePerOrigin idle connections', async () => {
    const pool = new H1Pool({ maxIdlePerOrigin: 3 })
    pools.push(pool)
    await Promise.all(Array.from({ length: 10 }, () => h1Request(pool, init(echo.port!)).then((r) => r.text())))
    expect(pool.idleCount(`127.0.0.1:${echo.port}`)).toBe(3)
  })

  test('streams a 200 MB upload with Content-Length, checksummed', async () => {
    const size = 200 * 1024 * 1024
    const expected = await digestStream(patternStream(size))
    const headers = new Headers({ host: 'app.test', 'content-length': String(size) })
    const res = await h1Request(newPool(), init(echo.port!, { method: 'POST', target: '/upload', headers, body: patternStream(size), timeoutMs: 60_000 }))
    const got = (await res.json()) as { hex: string; bytes: number; cl: string | null }
    expect(got.bytes).toBe(size)
    expect(got.hex).toBe(expected.hex)
    expect(got.cl).toBe(String(size))
  }, 60_000)

  test('streams a 200 MB upload of unknown length as chunked, checksummed', async () => {
    const size = 200 * 1024 * 1024 + 3
    const expected = await digestStream(patternStream(size, { chunk: 50_000 }))
    const res = await h1Request(
      newPool(),
      init(echo.port!, { method: 'PUT', target: '/upload', body: patternStream(size, { chunk: 50_000 }), timeoutMs: 60_000 }),
    )
    const got = (await res.json()) as { hex: string; bytes: number; te: string | null }
    expect(got.bytes).toBe(size)
    expect(got.hex).toBe(expected.hex)
    expect(got.te).toBe('chunked')
  }, 60_000)

  test('a slow upload longer than timeoutMs is not cut short while it moves', async () => {
    let i = 0
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (i++ === 8) return c.close()
        await Bun.sleep(60)
        c.enqueue(new Uint8Array(1000).fill(i))
      },
    })
    const res = await h1Request(newPool(), init(echo.port!, { method: 'POST', target: '/upload', body, timeoutMs: 200 }))
    expect(res.status).toBe(200)
    expect(((await res.json()) as { bytes: number }).bytes).toBe(8000)
  })

  test('a bodiless POST sends Content-Length: 0', async () => {
    const res = await h1Request(newPool(), init(echo.port!, { method: 'POST' }))
    expect(((await res.json()) as { headers: Record<string, string> }).headers['content-length']).toBe('0')
  })

  test('downloads a 64 MB streamed (chunked) body intact and reuses the connection', async () => {
    const size = 64 * 1024 * 1024
    const expected = await digestStream(patternStream(size))
    const pool = newPool()
    const res = await h1Request(pool, init(echo.port!, { target: `/big?n=${size}` }))
    // Sent chunked: the framing is decoded, so neither field reaches the caller.
    expect(res.headers.get('transfer-encoding')).toBeNull()
    expect(res.headers.get('content-length')).toBeNull()
    expect(await digestStream(res.body!)).toEqual(expected)
    await h1Request(pool, init(echo.port!)).then((r) => r.text())
    expect(pool.opened).toBe(1)
  }, 30_000)

  test('a request body that errors fails the request with BAD_REQUEST and drops the connection', async () => {
    let pulls = 0
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (++pulls > 3) c.error(new Error('client went away'))
        else c.enqueue(new Uint8Array(1000))
      },
    })
    const headers = new Headers({ host: 'app.test', 'content-length': '100000' })
    const err = await failure(h1Request(newPool(), init(echo.port!, { method: 'POST', target: '/upload', headers, body })))
    expect(err.code).toBe(CODES.BAD_REQUEST)
  })

  test('a request body longer than its Content-Length fails', async () => {
    const headers = new Headers({ host: 'app.test', 'content-length': '10' })
    const body = patternStream(100)
    const err = await failure(h1Request(newPool(), init(echo.port!, { method: 'POST', target: '/upload', headers, body })))
    expect(err.code).toBe(CODES.BAD_REQUEST)
  })
})

describe('h1Request() against raw upstreams', () => {
  test('decodes a chunked body split across writes, trailers dropped', async () => {
    const up = raw((_req, s) => {
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel')
      setTimeout(() => s.write('lo\r\n6;x=y\r\n, worl\r\n'), 20)
      setTimeout(() => s.write('1\r\nd\r\n0\r\nX-Trailer: 1\r\n\r\n'), 40)
    })
    const pool = newPool()
    const res = await h1Request(pool, init(up.port))
    expect(await res.text()).toBe('hello, world')
    await h1Request(pool, init(up.port)).then((r) => r.text())
    expect(up.connections).toBe(1)
  })

  test('a chunked body that arrives with the head is handed over whole', async () => {
    const up = raw((_req, s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n'))
    const res = await h1Request(newPool(), init(up.port))
    // Whole in memory: the HTTP/1 engine writes these bytes without reading a stream.
    expect(new TextDecoder().decode(readyBody(res))).toBe('abcdef')
    expect(await res.text()).toBe('abcdef')
  })

  test('a large chunked body that arrives with the head is streamed, and the connection reused', async () => {
    const data = 'z'.repeat(40_000)
    const up = raw((_req, s) => s.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${(40_000).toString(16)}\r\n${data}\r\n0\r\n\r\n`))
    const pool = newPool()
    const res = await h1Request(pool, init(up.port))
    expect(readyBody(res)).toBeUndefined()
    expect(res.body).toBeInstanceOf(ReadableStream)
    expect(await res.text()).toBe(data)
    expect(await (await h1Request(pool, init(up.port))).text()).toBe(data)
    expect(up.connections).toBe(1)
  })

  test('reads a close-delimited body to EOF and does not reuse the connection', async () => {
    const up = raw((_req, s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part, ')
      setTimeout(() => {
        s.write('second part')
        s.end()
      }, 20)
    })
    const pool = newPool()
    expect(await (await h1Request(pool, init(up.port))).text()).toBe('first part, second part')
    expect(await (await h1Request(pool, init(up.port))).text()).toBe('first part, second part')
    expect(up.connections).toBe(2)
  })

  test('HEAD: no body is read even with a Content-Length, and the connection is reused', async () => {
    const up = raw((_req, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: "x"\r\n\r\n'))
    const pool = newPool()
    for (let i = 0; i < 3; i++) {
      const res = await h1Request(pool, init(up.port, { method: 'HEAD' }))
      expect(res.status).toBe(200)
      expect(res.headers.get('content-length')).toBe('1234')
      expect(await res.text()).toBe('')
    }
    expect(up.connections).toBe(1)
  })

  test.each([
    { desc: '204', wire: 'HTTP/1.1 204 No Content\r\n\r\n', status: 204 },
    { desc: '304 with a Content-Length', wire: 'HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\nETag: "x"\r\n\r\n', status: 304 },
  ])('$desc has no body and keeps the connection', async ({ wire, status }) => {
    const up = raw((_req, s) => s.write(wire))
    const pool = newPool()
    for (let i = 0; i < 3; i++) {
      const res = await h1Request(pool, init(up.port))
      expect(res.status).toBe(status)
      expect(res.body === null || (await res.text()) === '').toBe(true)
    }
    expect(up.connections).toBe(1)
  })

  test('skips 100 Continue and 103 Early Hints before the final response', async () => {
    const up = raw((_req, s) => {
      s.write('HTTP/1.1 100 Continue\r\n\r\n')
      setTimeout(() => s.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok'), 10)
    })
    const res = await h1Request(newPool(), init(up.port))
    expect(res.status).toBe(201)
    expect(res.headers.get('link')).toBeNull()
    expect(await res.text()).toBe('ok')
  })

  test('a head split into single bytes is still parsed', async () => {
    const wire = 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Long: ' + 'v'.repeat(300) + '\r\n\r\nabc'
    const up = raw(async (_req, s) => {
      for (const ch of wire) {
        s.write(ch)
        s.flush()
        await Bun.sleep(0)
      }
    })
    const res = await h1Request(newPool(), init(up.port))
    expect(res.headers.get('x-long')).toBe('v'.repeat(300))
    expect(await res.text()).toBe('abc')
  })

  test.each([
    { desc: 'a malformed status line', wire: 'HTTP/1.1 OK\r\n\r\n' },
    { desc: 'garbage', wire: 'hello there\r\n\r\n' },
    { desc: 'Content-Length with Transfer-Encoding', wire: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' },
    { desc: 'conflicting Content-Length', wire: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!' },
    { desc: 'obs-fold', wire: 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n' },
    { desc: 'an unasked-for 101', wire: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n' },
    { desc: 'a head larger than 64 KiB', wire: 'HTTP/1.1 200 OK\r\n' + 'X-Big: aaaaaaaa\r\n'.repeat(5000) + '\r\n' },
    { desc: 'a head cut off by close', wire: 'HTTP/1.1 200 OK\r\nContent-Le', close: true },
  ])('rejects $desc as UPSTREAM_INVALID_RESPONSE', async ({ wire, close }) => {
    const up = raw((_req, s) => {
      s.write(wire)
      if (close) s.end()
    })
    const err = await failure(h1Request(newPool(), init(up.port)))
    expect(err.code).toBe(CODES.UPSTREAM_INVALID_RESPONSE)
    expect(err.status).toBe(502)
    expect(err.cause).toBeInstanceOf(H1ParseError)
  })

  test('a Content-Length body cut short errors the stream', async () => {
    const up = raw((_req, s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n${'a'.repeat(100_000)}`)
      setTimeout(() => s.end(), 20)
    })
    const res = await h1Request(newPool(), init(up.port))
    expect(res.status).toBe(200)
    expect(res.text()).rejects.toThrow()
  })

  test('a small Content-Length body cut short fails the request itself', async () => {
    const up = raw((_req, s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc')
      setTimeout(() => s.end(), 20)
    })
    const err = await failure(h1Request(newPool(), init(up.port)))
    expect(err.code).toBe(CODES.UPSTREAM_INVALID_RESPONSE)
  })

  test('a malformed chunk errors the stream', async () => {
    const up = raw((_req, s) => {
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel')
      setTimeout(() => s.write('lo\r\nzz\r\n'), 20)
    })
    const res = await h1Request(newPool(), init(up.port))
    expect(res.text()).rejects.toThrow()
  })

  test('Connection: close responses are not reused', async () => {
    const up = raw((_req, s) => s.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok'))
    const pool = newPool()
    for (let i = 0; i < 3; i++) expect(await (await h1Request(pool, init(up.port))).text()).toBe('ok')
    expect(up.connections).toBe(3)
  })

  test('bytes after the response make the connection unusable', async () => {
    const up = raw((_req, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n'))
    const pool = newPool()
    expect(await (await h1Request(pool, init(up.port))).text()).toBe('ok')
    expect(await (await h1Request(pool, init(up.port))).text()).toBe('ok')
    expect(up.connections).toBe(2)
  })

  test('a cancelled body drops the connection instead of reusing it', async () => {
    const up = raw((req, s) => {
      if (req.head.startsWith('GET /big')) s.write(`HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n${'a'.repeat(200_000)}`)
      else s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    })
    const pool = newPool()
    const res = await h1Request(pool, init(up.port, { target: '/big' }))
    const reader = res.body!.getReader()
    await reader.read()
    await reader.cancel()
    expect(await (await h1Request(pool, init(up.port))).text()).toBe('ok')
    expect(up.connections).toBe(2)
  })

  test('refused connections fail with UPSTREAM_REFUSED', async () => {
    const probe = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    const port = probe.port
    probe.stop(true)
    const err = await failure(h1Request(newPool(), init(port)))
    expect(err.code).toBe(CODES.UPSTREAM_REFUSED)
    expect(err.status).toBe(502)
    // Nothing went out: a caller may send the request elsewhere whatever its method.
    expect(err).toBeInstanceOf(UpstreamRefused)
    expect((err as UpstreamRefused).requestSent).toBe(false)
  })

  test('a connection closed before any answer fails with UPSTREAM_REFUSED, saying the request went out', async () => {
    const up = raw((_req, s) => s.end())
    const err = await failure(h1Request(newPool(), init(up.port)))
    expect(err.code).toBe(CODES.UPSTREAM_REFUSED)
    expect(up.requests.length).toBe(1)
    expect((err as UpstreamRefused).requestSent).toBe(true)
    expect((err as UpstreamRefused).closeReason).toBeUndefined()
  })

  test('a connection closed inside the response head is not a refusal (an answer had begun)', async () => {
    const up = raw((_req, s) => s.end('HTTP/1.1 200 OK\r\nContent-Le'))
    const err = await failure(h1Request(newPool(), init(up.port)))
    expect(err.code).toBe(CODES.UPSTREAM_INVALID_RESPONSE)
    expect(err).not.toBeInstanceOf(UpstreamRefused)
  })

  test('no head within timeoutMs fails with UPSTREAM_TIMEOUT and closes the connection', async () => {
    let closed = false
    const up = raw((_req, s) => {
      s.write('HTTP/1.1 200 OK\r\n')
      void closed
    })
    const pool = newPool()
    const started = performance.now()
    const err = await failure(h1Request(pool, init(up.port, { timeoutMs: 150 })))
    expect(err.code).toBe(CODES.UPSTREAM_TIMEOUT)
    expect(err.status).toBe(504)
    expect(performance.now() - started).toBeLessThan(2000)
    expect(pool.idleCount(`127.0.0.1:${up.port}`)).toBe(0)
    closed = true
  })

  test('a stale keep-alive connection is retried once on a fresh one', async () => {
    // The upstream answers once per connection, then drops the connection when the next request
    // arrives, as a server does when its idle timeout races our reuse.
    const up = raw((req, s) => {
      const earlier = up.requests.filter((r) => r.conn === req.conn).length
      if (earlier > 1) s.terminate()
      else s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    })
    const pool = newPool()
    expect(await (await h1Request(pool, init(up.port))).text()).toBe('ok')
    expect(await (await h1Request(pool, init(up.port))).text()).toBe('ok')
    expect(up.connections).toBe(2)
    expect(pool.opened).toBe(2)
  })

  test('a stale-connection retry that cannot connect still reports that the request went out', async () => {
    // The upstream takes the second request, then goes away entirely: the retry's connect is refused.
    const up = raw((req, s) => {
      const earlier = up.requests.filter((r) => r.conn === req.conn).length
      if (earlier > 1) up.stop()
      else s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    })
    const pool = newPool()
    expect(await (await h1Request(pool, init(up.port))).text()).toBe('ok')
    const err = await failure(h1Request(pool, init(up.port)))
    expect(err).toBeInstanceOf(UpstreamRefused)
    expect(up.requests.length).toBe(2)
    expect((err as UpstreamRefused).requestSent).toBe(true)
  })

  test('a stale connection is not retried for a non-idempotent request', async () => {
    const up = raw((req, s) => {
      const earlier = up.requests.filter((r) => r.conn === req.conn).length
      if (earlier > 1) s.terminate()
      else s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    })
    const pool = newPool()
    await (await h1Request(pool, init(up.port))).text()
    const err = await failure(h1Request(pool, init(up.port, { method: 'POST' })))
    expect(err.code).toBe(CODES.UPSTREAM_REFUSED)
    expect(up.connections).toBe(1)
  })

  test('the pool notices an idle connection the upstream closed', async () => {
    const up = raw((_req, s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
      setTimeout(() => s.end(), 10)
    })
    const pool = newPool()
    await (await h1Request(pool, init(up.port))).text()
    for (let i = 0; i < 50 && pool.idleCount(`127.0.0.1:${up.port}`) > 0; i++) await Bun.sleep(10)
    expect(pool.idleCount(`127.0.0.1:${up.port}`)).toBe(0)
    expect(await (await h1Request(pool, init(up.port))).text()).toBe('ok')
    expect(pool.opened).toBe(2)
  })

  test('a slow reader pauses the upstream: bounded buffering, then the whole body', async () => {
    const size = 64 * 1024 * 1024
    const block = new Uint8Array(256 * 1024).fill(97)
    let accepted = 0
    let done: () => void = () => {}
    const finished = new Promise<void>((resolve) => (done = resolve))
    // Writes as fast as the kernel takes bytes and records how many it took.
    const listener = Bun.listen({
      hostname: '127.0.0.1',
      port: 0,
      socket: {
        data(s) {
          s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`)
          pump(s)
        },
        drain(s) {
          pump(s)
        },
      },
    })
    function pump(s: { write(b: Uint8Array): number }): void {
      while (accepted < size) {
        const want = Math.min(block.length, size - accepted)
        const n = s.write(block.subarray(0, want))
        if (n > 0) accepted += n
        if (n < want) return
      }
      done()
    }
    try {
      const res = await h1Request(newPool(), init(listener.port))
      const reader = res.body!.getReader()
      let got = 0
      const first = await reader.read()
      got += first.value!.length
      await Bun.sleep(300)
      if (process.env.H1_DEBUG) console.log('upstream bytes accepted while the reader slept:', accepted)
      // Kernel buffers on both sides plus the stream's high-water mark: a few MB, never the 64 MB.
      expect(accepted).toBeLessThan(24 * 1024 * 1024)
      for (;;) {
        const { done: end, value } = await reader.read()
        if (end) break
        got += value.length
      }
      await finished
      expect(got).toBe(size)
    } finally {
      listener.stop(true)
    }
  }, 30_000)
})
