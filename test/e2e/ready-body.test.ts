import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startEdge, type Edge } from './framework/process.ts'
import { rawRequest, responses } from './framework/raw.ts'

// Small upstream bodies that arrive whole with their head are written by the HTTP/1.1 engine in the
// same write as the response head (src/lib/ready-body.ts), without reading a stream. Seen from a raw
// client and a raw upstream: framing, interim and bodiless answers, pipelining order, keep-alive reuse
// on both sides, and an upstream that fails before its answer is whole.

const ANSWERS: Record<string, string> = {
  '/len': 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-up: len\r\n\r\nhello',
  '/chunked': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n',
  '/interim': 'HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok',
  '/empty': 'HTTP/1.1 204 No Content\r\nx-up: empty\r\n\r\n',
  '/same': 'HTTP/1.1 304 Not Modified\r\netag: "v1"\r\n\r\n',
  '/short': 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc',
}

/** Upstream connections opened, and the request lines it read. */
let connections = 0
const seen: string[] = []
const upstream = Bun.listen<{ buf: string }>({
  hostname: '127.0.0.1',
  port: 0,
  socket: {
    open(s) {
      connections++
      s.data = { buf: '' }
    },
    data(s, d) {
      s.data.buf += d.toString('latin1')
      for (let end = s.data.buf.indexOf('\r\n\r\n'); end !== -1; end = s.data.buf.indexOf('\r\n\r\n')) {
        const line = s.data.buf.slice(0, s.data.buf.indexOf('\r\n'))
        s.data.buf = s.data.buf.slice(end + 4)
        seen.push(line)
        const [method, path] = line.split(' ') as [string, string]
        if (path === '/gone') return void s.end()
        const answer = ANSWERS[path] ?? 'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n'
        // HEAD: the same head, no body.
        s.write(method === 'HEAD' ? answer.slice(0, answer.indexOf('\r\n\r\n') + 4) : answer)
        if (path === '/short') s.end()
      }
    },
  },
})

let edge: Edge
beforeAll(async () => {
  edge = await startEdge({
    policies: {
      // url-rewrite keeps these requests on the pipeline (a policy that only reads the head or edits its
      // headers takes the byte relay, which streams every body as it arrives: test/e2e/http-relay.test.ts).
      'app.yml': `url: http://app.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions:\n        - {type: url-rewrite, config: {from: "^/never$", to: "/x"}}\n        - {type: forward-external, config: {url: "http://127.0.0.1:${upstream.port}"}}\n`,
    },
  })
})
afterAll(async () => {
  await edge?.stop()
  upstream.stop(true)
})

const H = 'Host: app.warren.localhost\r\n'


describe('small upstream bodies written with the head', () => {
  test('pipelined requests of every framing are answered in order on one client and one upstream connection', async () => {
    const before = connections
    const paths = ['/len', '/chunked', '/interim', '/empty', '/same', '/len']
    const methods = ['GET', 'GET', 'GET', 'GET', 'GET', 'HEAD']
    const text = paths.map((p, i) => `${methods[i]} ${p} HTTP/1.1\r\n${H}\r\n`).join('')
    const raw = await rawRequest(edge.httpPort, text, 1500)
    const answers = responses(raw, (i) => methods[i] === 'HEAD')
    expect(answers.map((a) => a.status)).toEqual([200, 200, 201, 204, 304, 200])
    expect(answers.map((a) => a.body)).toEqual(['hello', 'abcde', 'ok', '', '', ''])
    // Content-Length framing as the upstream declared it; the chunked one had its length known once whole.
    expect(answers[0]!.headers).toMatch(/\r\ncontent-length: 5(\r\n|$)/i)
    expect(answers[0]!.headers).toMatch(/\r\nx-up: len(\r\n|$)/i)
    expect(answers[1]!.headers).toMatch(/\r\ncontent-length: 5(\r\n|$)/i)
    expect(answers[1]!.headers).not.toMatch(/transfer-encoding/i)
    // HEAD keeps the length of the body it did not get; 204 and 304 carry neither length nor body.
    expect(answers[5]!.headers).toMatch(/\r\ncontent-length: 5(\r\n|$)/i)
    expect(answers[3]!.headers).not.toMatch(/content-length|transfer-encoding/i)
    expect(answers[4]!.headers).toMatch(/\r\netag: "v1"(\r\n|$)/i)
    // Nothing after the last answer: the bodiless ones did not leak bytes into the stream.
    expect(raw.endsWith('\r\n\r\n')).toBe(true)
    expect(connections - before).toBe(1)
  })

  test('an upstream that closes before its small body is whole gets 502 with a code, and the next request works', async () => {
    const text = `GET /short HTTP/1.1\r\n${H}\r\nGET /len HTTP/1.1\r\n${H}\r\n`
    const answers = responses(await rawRequest(edge.httpPort, text, 1500), () => false)
    expect(answers.map((a) => a.status)).toEqual([502, 200])
    expect(answers[0]!.headers).toMatch(/\r\nwarren-error-code: ERR_WARREN_3004(\r\n|$)/i)
    expect(answers[1]!.body).toBe('hello')
  })

  test('an upstream that closes without answering gets 502 with a code', async () => {
    const [answer] = responses(await rawRequest(edge.httpPort, `GET /gone HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, 1500), () => false)
    expect(answer!.status).toBe(502)
    expect(answer!.headers).toMatch(/\r\nwarren-error-code: ERR_WARREN_8012(\r\n|$)/i)
    expect(seen.filter((l) => l.startsWith('GET /gone')).length).toBeGreaterThanOrEqual(1)
  })
})
