import { describe, expect, test } from 'bun:test'
import { RequestHead } from '../http1/head.ts'
import { parseHead } from '../http1/parse-head.ts'
import { linesOf, recordLines } from '../lib/header-lines.ts'
import { compilePolicy, relayPlan, runPhase, validatePolicy } from '../policy/engine.ts'
import type { EndpointInfo, HttpExchange, Outcome } from '../policy/types.ts'
import { xorshift } from '../../test/helpers/xorshift.ts'
import { HOP_BY_HOP } from './hop-headers.ts'
import { headUrl, RelayExchange } from './relay-exchange.ts'
import { upstreamHead } from './relay-route.ts'

const ENDPOINT: EndpointInfo = { id: 'ep_relay', url: 'http://app.test', scheme: 'http', host: 'app.test', port: 80, binding: 'public' }
const CONN = { clientIp: '127.0.0.1', clientPort: 40000, serverIp: '127.0.0.1', serverPort: 80, startedAt: 1_700_000_000_000 }

function headOf(text: string): RequestHead {
  const buf = Buffer.from(text, 'latin1')
  return new RequestHead(parseHead(buf, 0, buf.indexOf('\r\n\r\n') + 4))
}

/** The exchange the pipeline makes of the same head (http1/connection.ts, then proxy/pipeline.ts). */
function pipelineExchange(head: RequestHead): HttpExchange {
  const headers = head.toHeaders()
  headers.delete('expect')
  const repeated = head.repeated()
  if (repeated) for (const [name, lines] of repeated) recordLines(headers, name, lines)
  const url = new URL(`http://${head.parsed.host}${head.parsed.path}`)
  return { endpoint: ENDPOINT, conn: { ...CONN }, httpVersion: head.version, method: head.method, url, headers, vars: {}, actions: {}, logMetadata: {} }
}

/** Header lines grouped by lower-case name, values in order: what must match, whatever the order of names. */
function grouped(lines: Iterable<[string, string]>): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const [name, value] of lines) (out[name.toLowerCase()] ??= []).push(value)
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)))
}

function pipelineLines(headers: Headers): [string, string][] {
  const out: [string, string][] = []
  for (const [name, value] of headers) for (const line of linesOf(headers, name, value) ?? [value]) out.push([name, line])
  return out
}

function summary(outcome: Outcome): unknown {
  if (outcome.kind === 'respond') return { kind: 'respond', status: outcome.response.status, code: outcome.response.headers.get('warren-error-code') }
  if (outcome.kind === 'forward') return { kind: 'forward', url: outcome.target.url.href }
  return outcome
}

const POLICIES: Record<string, unknown> = {
  'header edits, vars and conditional routing': {
    on_http_request: [
      { expressions: ["req.method == 'GET'"], actions: [{ type: 'set-vars', config: { vars: [{ is_get: true }, { path: '${req.url.path}' }] } }] },
      { expressions: ["'x-multi' in req.headers"], actions: [{ type: 'add-headers', config: { headers: { 'x-multi': 'added', 'x-seen': '${req.headers["x-multi"][0]}' } } }] },
      { expressions: ['vars.is_get && vars.missing == 1'], actions: [{ type: 'add-headers', config: { headers: { 'x-never': '1' } } }] },
      { actions: [{ type: 'remove-headers', config: { headers: ['x-secret', 'accept'] } }] },
      { expressions: ["size(req.headers) > 2 && req.headers.exists(k, k == 'x-multi')"], actions: [{ type: 'add-headers', config: { headers: { 'x-count': '${string(size(req.headers))}', 'x-forwarded-for': '10.9.9.9' } } }] },
      { expressions: ["getReqHeader('X-Multi').size() > 0", "hasReqHeader('x-seen')"], actions: [{ type: 'set-vars', config: { vars: { after: '${req.headers["x-seen"][0]}' } } }] },
      { expressions: ["req.url.path.startsWith('/b')"], actions: [{ type: 'forward-external', config: { url: 'http://127.0.0.1:9002' } }] },
      { actions: [{ type: 'forward-external', config: { url: 'http://127.0.0.1:9001' } }] },
    ],
  },
  'answers from the edge': {
    on_http_request: [
      { expressions: ["req.url.path == '/deny'"], actions: [{ type: 'deny', config: { status_code: 401 } }] },
      { expressions: ["req.url.query_params['q'][0] == 'x'"], actions: [{ type: 'custom-response', config: { status_code: 418, body: 'q=${req.url.query}' } }] },
      { expressions: ["req.url.path == '/fail'"], actions: [{ type: 'add-headers', config: { headers: { 'x-fail': '${vars.nope}' } } }] },
      { expressions: ["req.user_agent.is_bot || req.cookies['sid'][0].value == 's1'"], actions: [{ type: 'custom-response', config: { status_code: 429 } }] },
    ],
  },
}

const REQUESTS = [
  'GET /a HTTP/1.1\r\nHost: app.test\r\nAccept: */*\r\n\r\n',
  'GET /b/./c?x=1 HTTP/1.1\r\nHost: app.test\r\nX-Multi: one\r\nx-multi: two\r\nX-Secret: s\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n',
  'POST /a%2e%2e/b HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\nExpect: 100-continue\r\nConnection: keep-alive, x-drop\r\nX-Drop: d\r\nX-Multi: m\r\n\r\n',
  'GET /deny HTTP/1.1\r\nHost: app.test\r\n\r\n',
  "GET /q?q=x&q=y HTTP/1.1\r\nHost: app.test\r\nCookie: sid=s1; b=2\r\n\r\n",
  'GET /fail HTTP/1.1\r\nHost: app.test\r\nUser-Agent: Googlebot/2.1 (+http://www.google.com/bot.html)\r\n\r\n',
  "GET /fail?'a'\"b HTTP/1.1\r\nHost: app.test\r\nTE: trailers\r\nUpgrade: h2c\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n\r\n",
]

describe('RelayExchange', () => {
  test.each(Object.keys(POLICIES).flatMap((p) => REQUESTS.map((r) => [p, r] as const)))('%s: %j runs as on the pipeline', (name, raw) => {
    const policy = compilePolicy(validatePolicy(POLICIES[name]), { scheme: 'http', cloud: false })
    const rules = relayPlan(policy)?.rules
    expect(rules).toBeDefined()
    const head = headOf(raw)
    const relay = new RelayExchange(head, ENDPOINT, { ...CONN }, 'http')
    const pipeline = pipelineExchange(head)
    const [a, b] = [runPhase(rules!, relay), runPhase(policy.on_http_request, pipeline)] as [Outcome, Outcome]
    expect(summary(a)).toEqual(summary(b))
    expect(relay.vars).toEqual(pipeline.vars)
    expect(relay.actions).toEqual(pipeline.actions)
    expect(grouped(relay.headers.lines())).toEqual(grouped(pipelineLines(pipeline.headers)))
    expect(relay.target()).toBe(pipeline.url.pathname + pipeline.url.search)
  })

  test('the path goes upstream as sent when URL parsing would not change it, else as the URL has it', () => {
    // Those the engine's parser refuses (a space, bytes past ASCII…) never reach a policy.
    const paths = ['/', '/a/b?c=d&e', '/%41%zz', '/a//b', '/a/./b', '/a/../b', '/a/%2E%2e/b', '/a/.%2e/b', "/q?'x'", '/a\\b', '/{x}', '/a|b^`', '/a?b"<>', '/.hidden', '/a:b@c', '/a;b=c,d']
    for (const path of paths) {
      const head = headOf(`GET ${path} HTTP/1.1\r\nHost: app.test\r\n\r\n`)
      const url = new URL(`http://app.test${head.parsed.path}`)
      expect([path, new RelayExchange(head, ENDPOINT, CONN, 'http').target()]).toEqual([path, url.pathname + url.search])
    }
  })

  test('the path goes upstream as URL parsing has it, over 20000 random paths', () => {
    const bytes = "aZ09-._~!$&()*+,;=:@/?%'\\\"<>^`{|}2eE#["
    let seed = 11
    const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
    let checked = 0
    for (let n = 0; n < 20000; n++) {
      const path = '/' + Array.from({ length: 1 + Math.floor(next() * 8) }, () => bytes[Math.floor(next() * bytes.length)]).join('')
      let head: RequestHead
      try {
        head = headOf(`GET ${path} HTTP/1.1\r\nHost: app.test\r\n\r\n`)
      } catch {
        continue // the parser refuses it: no policy sees it
      }
      const url = new URL(`http://app.test${head.parsed.path}`)
      expect([path, new RelayExchange(head, ENDPOINT, CONN, 'http').target()]).toEqual([path, url.pathname + url.search])
      checked++
    }
    expect(checked).toBeGreaterThan(5000)
  })

  test('req.url parts read from the head equal what URL parses, or are left to URL', () => {
    const hosts = ['app.test', 'app.test:8080', 'app.test:80', 'app.test:443', 'app.test:080', 'app.test:0', 'app.test:65535', 'app.test:99999', 'APP.test', 'a-b.c-d.example', 'a.1', 'a.0x1', 'foo.09', 'a..b', 'a.', '-a.b', 'a-.b', 'xn--nxasmq6b.example', 'a.xn--p1ai', '127.0.0.1', '127.0.0.1:80', '127.0.0.1:3000', '127.1', '1.2.3.04', '1.2.3.4.5', '0x7f.0.0.1', '010.0.0.1', '256.1.1.1', '[::1]:8080', 'exa_mple.test']
    const paths = ['/', '/a?b=c&d', '/a/./b', '/a/../b', '/a//b', '//x', '/%2e/x', '/a/%2E%2e', '/a%20b', '/a%zz', '/a?', '/a?x=%zz&y', '/.x', "/q?'x'", '/a/b/..', '/a#f', '/a?b#c', '/a b', '/ä']
    let fast = 0
    for (const scheme of ['http', 'https'])
      for (const host of hosts)
        for (const path of paths) {
          const parts = headUrl(scheme, host, path)
          let url: URL
          try {
            url = new URL(`${scheme}://${host}${path}`)
          } catch {
            expect([scheme, host, path, parts]).toEqual([scheme, host, path, undefined])
            continue
          }
          if (!parts) continue
          fast++
          const want = { href: url.href, protocol: url.protocol, host: url.host, hostname: url.hostname, port: url.port, pathname: url.pathname, search: url.search, username: url.username, password: url.password }
          expect([host, path, parts]).toEqual([host, path, want])
        }
    // The common shapes take the quick way (else the test above would compare nothing).
    for (const [host, path] of [['app.test', '/a?b=c&d'], ['app.test:8080', '//x'], ['127.0.0.1:80', '/'], ['a-b.c-d.example', '/a%20b']]) expect(headUrl('http', host!, path!)).toBeDefined()
    expect(fast).toBeGreaterThan(100)
  })

  test('a URL that does not parse (a port past 65535) has no target, and a policy that reads it marks the exchange', () => {
    const ex = new RelayExchange(headOf('GET /a/../b HTTP/1.1\r\nHost: app.test:99999\r\n\r\n'), ENDPOINT, CONN, 'http')
    expect(ex.target()).toBeUndefined()
    expect(ex.invalidUrl).toBe(true)
  })

  test('a head no policy read goes upstream as the client wrote it; one a policy edited carries the edits as lines', () => {
    const raw = 'GET /a HTTP/1.1\r\nHost: app.test\r\nX-A: 1\r\nConnection: x-gone\r\nX-Gone: g\r\nx-a: 2\r\n\r\n'
    expect(upstreamHead(headOf(raw), undefined, { clientIp: '10.0.0.1', proto: 'http' }).toString('latin1')).toBe(
      'GET /a HTTP/1.1\r\nHost: app.test\r\nX-A: 1\r\nx-a: 2\r\nx-forwarded-for: 10.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: app.test\r\n\r\n',
    )
    const ex = new RelayExchange(headOf(raw), ENDPOINT, CONN, 'http')
    ex.headers.append('x-a', '3')
    ex.headers.append('x-gone', 'policy')
    expect(upstreamHead(headOf(raw), ex, { clientIp: '10.0.0.1', proto: 'http' }).toString('latin1')).toBe(
      'GET /a HTTP/1.1\r\nHost: app.test\r\nX-A: 1\r\nx-a: 2\r\nx-a: 3\r\nx-gone: policy\r\nx-forwarded-for: 10.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: app.test\r\n\r\n',
    )
  })

  test('the upstream head has the lines writing each from strings would give, over 3000 random heads, with and without a policy', () => {
    // The writer copies client lines as bytes; this reference writes every line from its strings (as before).
    function reference(head: RequestHead, lines: [string, string][], drop: readonly string[]): string {
      const edge = new Set([...HOP_BY_HOP, 'content-length', 'expect', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'])
      let text = ''
      let xff = ''
      for (const [name, value] of lines) {
        const lower = name.toLowerCase()
        if (drop.includes(lower)) continue
        if (edge.has(lower)) {
          if (lower === 'x-forwarded-for') xff += `${value}, `
          continue
        }
        text += `${name}: ${value}\r\n`
      }
      return `${text}x-forwarded-for: ${xff}10.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: ${head.parsed.host}\r\n`
    }
    const names = ['X-A', 'x-a', 'Accept', 'X-Forwarded-For', 'x-forwarded-FOR', 'X-Forwarded-Proto', 'X-FORWARDED-HOST', 'Keep-Alive', 'TE', 'Trailer', 'Proxy-Authorization', 'X-Drop', 'x-DROP', 'Upgrade', 'Expect', 'X^Y', 'x~y', 'User-Agent', 'Cookie']
    const ows = ['', ' ', '  ', '\t', ' \t ']
    const next = xorshift(14)
    const pick = <T,>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!
    let edited = 0
    for (let n = 0; n < 3000; n++) {
      let raw = 'GET /p HTTP/1.1\r\nHost: app.test\r\n'
      for (let k = Math.floor(next() * 6); k > 0; k--) raw += `${pick(names)}:${pick(ows)}v${k}${pick(ows)}\r\n`
      if (next() < 0.3) raw += `Connection: ${pick(['x-drop', 'X-Drop, x~y', 'close', 'x^y', 'X-Forwarded-For', 'x-forwarded-proto, accept'])}\r\n`
      raw += '\r\n'
      const head = headOf(raw)
      let ex: RelayExchange | undefined
      let lines = head.lines()
      let drop = head.parsed.connectionTokens
      if (next() < 0.5) {
        ex = new RelayExchange(headOf(raw), ENDPOINT, CONN, 'http')
        const choice = next()
        if (choice < 0.3) ex.headers.append('x-added', 'new')
        else if (choice < 0.5) ex.headers.set('x-a', 'replaced')
        else if (choice < 0.7) ex.headers.delete('accept')
        else if (choice < 0.8) ex.headers.delete('x-a')
        lines = ex.headers.lines()
        drop = []
        edited++
      }
      const out = upstreamHead(head, ex, { clientIp: '10.0.0.1', proto: 'http' }).toString('latin1')
      const got = new RequestHead(parseHead(Buffer.from(out, 'latin1'), 0, out.length))
      const wanted = `GET /p HTTP/1.1\r\n${reference(head, lines, drop)}\r\n`
      const want = new RequestHead(parseHead(Buffer.from(wanted, 'latin1'), 0, wanted.length))
      expect([raw, got.lines()]).toEqual([raw, want.lines()])
    }
    expect(edited).toBeGreaterThan(1000)
  })

  test('lines only appended and headers only read (no list built) give the reads and the upstream head of the built list, over 2000 random heads', () => {
    const names = ['X-A', 'x-a', 'Accept', 'X-Forwarded-For', 'Keep-Alive', 'TE', 'X-Drop', 'Expect', 'User-Agent', 'Cookie', 'cookie', 'X-Length']
    const asked = ['x-a', 'X-A', 'accept', 'x-forwarded-for', 'keep-alive', 'x-drop', 'expect', 'user-agent', 'cookie', 'x-length', 'x-added', 'connection', 'x-none']
    const appended = ['x-a', 'x-added', 'x-forwarded-for', 'x-drop', 'keep-alive', 'cookie', 'accept']
    const next = xorshift(41)
    const pick = <T,>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!
    const forwarded = { clientIp: '10.0.0.1', proto: 'http' }
    let appends = 0
    for (let n = 0; n < 2000; n++) {
      let raw = 'GET /p HTTP/1.1\r\nHost: app.test\r\n'
      for (let k = Math.floor(next() * 6); k > 0; k--) raw += `${pick(names)}: v${k}\r\n`
      if (next() < 0.3) raw += `Connection: ${pick(['x-drop', 'close', 'X-Forwarded-For', 'x-a, accept'])}\r\n`
      raw += '\r\n'
      const lazy = new RelayExchange(headOf(raw), ENDPOINT, CONN, 'http')
      const built = new RelayExchange(headOf(raw), ENDPOINT, CONN, 'http')
      built.headers.lines()
      for (let k = Math.floor(next() * 4); k > 0; k--) {
        const [name, value] = [pick(appended), `a${k}`]
        lazy.headers.appendLine(name, value)
        built.headers.appendLine(name, value)
        appends++
        const ask = pick(asked)
        expect([raw, ask, lazy.headers.get(ask), lazy.headers.has(ask)]).toEqual([raw, ask, built.headers.get(ask), built.headers.has(ask)])
      }
      expect(lazy.headerLines).toBeUndefined()
      expect(built.headerLines).toBeDefined()
      const head = headOf(raw)
      expect([raw, upstreamHead(head, lazy, forwarded).toString('latin1')]).toEqual([raw, upstreamHead(head, built, forwarded).toString('latin1')])
      // Built afterwards, the lines keep the appended ones in order.
      expect(lazy.headers.lines()).toEqual(built.headers.lines())
    }
    expect(appends).toBeGreaterThan(2000)
    expect(() => new RelayExchange(headOf('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), ENDPOINT, CONN, 'http').headers.get('bad name')).toThrow(TypeError)
    expect(() => new RelayExchange(headOf('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), ENDPOINT, CONN, 'http').headers.appendLine('x-a', 'Ā')).toThrow(TypeError)
  })
})
