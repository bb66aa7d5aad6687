import { afterAll, describe, expect, test } from 'bun:test'
import { CODES, ERROR_CODE_HEADER } from '../../lib/errors.ts'
import type { HttpExchange } from '../../policy/types.ts'
import { forwardHttp } from '../http.ts'
import { rawUpstream } from './test-upstream.ts'

// forwardHttp only reads method, url and headers: the rest of the exchange does not matter here.
function exchange(method: string, url: string, headers: Record<string, string> = {}): HttpExchange {
  return { method, url: new URL(url), headers: new Headers({ host: 'app.test', ...headers }) } as unknown as HttpExchange
}

const up = rawUpstream((req, s) => {
  if (req.head.startsWith('GET /hop ')) {
    s.write(
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: x-private, keep-alive\r\nKeep-Alive: timeout=5\r\n' +
        'X-Private: secret\r\nWarren-Error-Code: ERR_WARREN_3200\r\nX-Kept: yes\r\n\r\nok',
    )
  } else if (req.head.startsWith('GET /chunked ')) {
    s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nok\r\n0\r\n\r\n')
  } else if (req.head.startsWith('GET /bad ')) {
    s.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n')
  } else if (req.head.startsWith('GET /slow ')) {
    // never answers
  } else {
    s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${req.head.length}\r\n\r\n${req.head}`)
  }
})
afterAll(() => up.stop())

const origin = new URL(`http://127.0.0.1:${up.port}`)

describe('forwardHttp() over the HTTP/1.1 client', () => {
  test('strips hop-by-hop headers (and those Connection names) and Warren-Error-Code from the answer', async () => {
    const res = await forwardHttp(exchange('GET', 'http://app.test/hop'), origin, null, { timeoutMs: 5000 })
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('ok')
    expect(res.headers.get('x-kept')).toBe('yes')
    for (const name of ['connection', 'keep-alive', 'x-private', ERROR_CODE_HEADER]) expect(res.headers.get(name)).toBeNull()
  })

  test('a chunked answer loses Transfer-Encoding and Trailer (the edge re-frames it)', async () => {
    const res = await forwardHttp(exchange('GET', 'http://app.test/chunked'), origin, null, { timeoutMs: 5000 })
    expect(res.headers.get('transfer-encoding')).toBeNull()
    expect(res.headers.get('trailer')).toBeNull()
    expect(await res.text()).toBe('ok')
  })

  test('strips hop-by-hop request headers and keeps Host and the query', async () => {
    // The client's Connection options went at entry (pipeline): one named now was set by the edge or a policy.
    const ex = exchange('GET', 'http://app.test/echo?a=1', { connection: 'x-set-later', 'x-set-later': '1', te: 'trailers', 'x-keep': '2' })
    const head = await (await forwardHttp(ex, origin, null, { timeoutMs: 5000 })).text()
    expect(head.startsWith('GET /echo?a=1 HTTP/1.1\r\n')).toBe(true)
    expect(head).toContain('host: app.test\r\n')
    expect(head).toContain('x-keep: 2\r\n')
    expect(head).toContain('x-set-later: 1\r\n')
    expect(head).not.toContain('connection: x-set-later')
    expect(head).not.toContain('te: ')
  })

  test.each([
    { desc: 'an invalid answer', path: '/bad', status: 502, code: CODES.UPSTREAM_INVALID_RESPONSE },
    { desc: 'no answer in time', path: '/slow', status: 504, code: CODES.UPSTREAM_TIMEOUT },
  ])('$desc becomes $status $code', async ({ path, status, code }) => {
    const res = await forwardHttp(exchange('GET', `http://app.test${path}`), origin, null, { timeoutMs: 200 })
    expect(res.status).toBe(status)
    expect(res.headers.get(ERROR_CODE_HEADER)).toBe(code)
    expect(await res.text()).toContain(code)
  })

  test('a refused connection becomes 502 UPSTREAM_REFUSED', async () => {
    const probe = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    const closed = new URL(`http://127.0.0.1:${probe.port}`)
    probe.stop(true)
    const res = await forwardHttp(exchange('GET', 'http://app.test/'), closed, null, { timeoutMs: 5000 })
    expect(res.status).toBe(502)
    expect(res.headers.get(ERROR_CODE_HEADER)).toBe(CODES.UPSTREAM_REFUSED)
  })
})
