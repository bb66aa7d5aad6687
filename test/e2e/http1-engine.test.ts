import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { startEdge, type Edge } from './framework/process.ts'
import { rawRequest, responses, startRawHeadUpstream } from './framework/raw.ts'
import { startUpstream } from './framework/upstreams.ts'

// The HTTP/1.1 engine on the plaintext port, seen from raw client sockets: what Bun.serve could not do
// (pipelining, HTTP/1.0 without Host, a 431 with its code past 16 KiB), and what a connection-level
// engine must get right (trailers, Connection-named headers, a client that stops reading).

const upstream = startUpstream('engine-origin')
/** Keeps the request heads exactly as they arrived (Bun.serve would join lines). */
const rawUpstream = startRawHeadUpstream()
const heads = rawUpstream.heads
let edge: Edge
beforeAll(async () => {
  edge = await startEdge({
    config: 'http:\n  max_header_bytes: 16384\n',
    policies: {
      'app.yml': `url: http://app.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: forward-external, config: {url: "http://127.0.0.1:${upstream.port}"}}]\n`,
      'raw.yml': `url: http://raw.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions:\n        - {type: add-headers, config: {headers: {accept: added/by-policy}}}\n        - {type: forward-external, config: {url: "http://127.0.0.1:${rawUpstream.port}"}}\n`,
      'once.yml':
        'url: http://once.warren.localhost\ntraffic_policy:\n  on_tcp_connect:\n    - actions: [{type: log, config: {metadata: {tcp_connect: ran}}}]\n  on_http_request:\n    - actions: [{type: custom-response, config: {status_code: 200, body: "ok"}}]\n',
      'version.yml':
        'url: http://version.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response, config: {status_code: 200, body: "${req.version}"}}]\n',
    },
  })
})
afterAll(async () => {
  await edge?.stop()
  upstream.stop(true)
  rawUpstream.stop()
})

const H = 'Host: app.warren.localhost\r\n'

describe('the HTTP/1.1 engine', () => {
  test('three pipelined requests in one write are answered in order', async () => {
    const text = ['/first', '/second', '/third'].map((p) => `GET /echo${p} HTTP/1.1\r\n${H}\r\n`).join('')
    const answers = responses(await rawRequest(edge.httpPort, text, 1500))
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200])
    expect(answers.map((a) => (JSON.parse(a.body) as { path: string }).path)).toEqual(['/echo/first', '/echo/second', '/echo/third'])
  })

  test('Connection: x-forwarded-for removes the client\'s line, never the edge\'s own', async () => {
    const text = `GET /echo HTTP/1.1\r\n${H}Connection: x-forwarded-for, x-drop\r\nX-Forwarded-For: 6.6.6.6\r\nX-Drop: 1\r\nX-Keep: 1\r\n\r\n`
    const [answer] = responses(await rawRequest(edge.httpPort, text))
    const seen = (JSON.parse(answer!.body) as { headers: Record<string, string> }).headers
    expect(seen['x-forwarded-for']).toBe('127.0.0.1')
    expect(seen['x-drop']).toBeUndefined()
    expect(seen['x-keep']).toBe('1')
  })

  test('repeated header lines, and a line add-headers adds to an existing name, reach the upstream as separate lines', async () => {
    const text = 'GET /dup HTTP/1.1\r\nHost: raw.warren.localhost\r\nX-Dup: one\r\nAccept: text/plain\r\nx-dup: two\r\nX-Single: s\r\nConnection: close\r\n\r\n'
    const [answer] = responses(await rawRequest(edge.httpPort, text))
    expect(answer?.body).toBe('ok')
    const head = heads.find((h) => h.startsWith('GET /dup '))!
    const lines = head.split('\r\n').slice(1).map((l) => l.toLowerCase())
    expect(lines.filter((l) => l.startsWith('x-dup:'))).toEqual(['x-dup: one', 'x-dup: two'])
    expect(lines.filter((l) => l.startsWith('accept:'))).toEqual(['accept: text/plain', 'accept: added/by-policy'])
    expect(lines.filter((l) => l.startsWith('x-single:'))).toEqual(['x-single: s'])
  })

  test('on_tcp_connect runs once per connection, not once per request', async () => {
    const text = ['/a', '/b', '/c'].map((p) => `GET ${p} HTTP/1.1\r\nHost: once.warren.localhost\r\n\r\n`).join('')
    const answers = responses(await rawRequest(edge.httpPort, text))
    expect(answers.map((a) => a.body)).toEqual(['ok', 'ok', 'ok'])
    await edge.waitForLog(/"endpoint":"http:\/\/once\.warren\.localhost".*"path":"\/c"/)
    const lines = edge.logs().split('\n').filter((l) => l.includes('"endpoint":"http://once.warren.localhost"'))
    expect(lines.length).toBe(3)
    expect(lines.filter((l) => l.includes('"tcp_connect":"ran"')).length).toBe(1)
  })

  test('HTTP/1.0 without Host → 400 with a code and Connection: close', async () => {
    const answer = await rawRequest(edge.httpPort, 'GET /echo HTTP/1.0\r\n\r\n')
    expect(answer).toMatch(/^HTTP\/1\.1 400 /)
    expect(answer).toMatch(/warren-error-code: ERR_WARREN_3007/i)
    expect(answer).toMatch(/connection: close/i)
  })

  test('HTTP/1.0 with Host is served and closed (no keep-alive asked)', async () => {
    const answer = await rawRequest(edge.httpPort, `GET /echo HTTP/1.0\r\n${H}\r\n`)
    expect(answer).toMatch(/^HTTP\/1\.1 200 /)
    expect(answer).toMatch(/connection: close/i)
  })

  test('req.version is the version on the request line', async () => {
    const one = responses(await rawRequest(edge.httpPort, 'GET / HTTP/1.0\r\nHost: version.warren.localhost\r\n\r\n'))
    const eleven = responses(await rawRequest(edge.httpPort, 'GET / HTTP/1.1\r\nHost: version.warren.localhost\r\nConnection: close\r\n\r\n'))
    expect(one[0]?.body).toBe('HTTP/1.0')
    expect(eleven[0]?.body).toBe('HTTP/1.1')
  })

  test('a 20 KiB head → 431 with Warren-Error-Code, nothing upstream', async () => {
    const before = upstream.seen.length
    const answer = await rawRequest(edge.httpPort, `GET /big HTTP/1.1\r\n${H}X-Big: ${'x'.repeat(20 * 1024)}\r\n\r\n`)
    expect(answer).toMatch(/^HTTP\/1\.1 431 /)
    expect(answer).toMatch(/warren-error-code: ERR_WARREN_3006/i)
    expect(answer).toMatch(/connection: close/i)
    expect(upstream.seen.length).toBe(before)
  })

  test.each([
    { desc: 'CONNECT', text: `CONNECT app.warren.localhost:80 HTTP/1.1\r\n${H}\r\n`, status: 501, code: 'ERR_WARREN_3031' },
    { desc: 'HTTP/2.0 on the request line', text: `GET / HTTP/2.0\r\n${H}\r\n`, status: 505, code: 'ERR_WARREN_3030' },
    { desc: 'obs-fold', text: `GET / HTTP/1.1\r\n${H}X-A: a\r\n b\r\n\r\n`, status: 400, code: 'ERR_WARREN_3007' },
    { desc: 'a bare LF', text: `GET / HTTP/1.1\n${H}\r\n`, status: 400, code: 'ERR_WARREN_3007' },
  ])('$desc → $status with $code', async ({ text, status, code }) => {
    const answer = await rawRequest(edge.httpPort, text)
    expect(answer.slice(0, 12)).toBe(`HTTP/1.1 ${status}`)
    expect(answer.toLowerCase()).toContain(`warren-error-code: ${code.toLowerCase()}`)
  })

  test('a chunked body with trailers reaches the upstream whole', async () => {
    const text = `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n`
    const [answer] = responses(await rawRequest(edge.httpPort, text))
    expect(answer?.status).toBe(200)
    expect((JSON.parse(answer!.body) as { bodyBytes: number }).bodyBytes).toBe(11)
  })

  test('a bad chunk size is a 400 with its code (not the upstream 502), and the connection closes', async () => {
    const answer = await rawRequest(edge.httpPort, `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`)
    expect(answer).toMatch(/^HTTP\/1\.1 400 /)
    expect(answer.toLowerCase()).toContain('warren-error-code: err_warren_3007')
    expect(upstream.seen.some((r) => r.path === '/smuggled')).toBe(false)
  })

  test('a client that never reads a 4 GiB response keeps the edge under its memory bound', async () => {
    const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${edge.proc.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024
    const idle = rss()
    let peak = idle
    const socket = await Bun.connect({
      hostname: '127.0.0.1',
      port: edge.httpPort,
      socket: { data() {}, close() {} },
    })
    // Never resumed: the kernel buffers fill, then the edge must stop reading from the upstream.
    socket.pause()
    socket.write(`GET /bytes/${4 * 1024 ** 3} HTTP/1.1\r\n${H}\r\n`)
    for (let i = 0; i < 40; i++) {
      await Bun.sleep(100)
      peak = Math.max(peak, rss())
    }
    socket.terminate()
    console.log(`unread 4 GiB response: edge grew ${((peak - idle) / 1024 ** 2).toFixed(1)} MB`)
    expect(peak - idle).toBeLessThan(40 * 1024 ** 2)
  }, 30_000)
})
