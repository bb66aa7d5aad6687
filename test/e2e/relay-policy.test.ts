import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { edgeFlags, startAgent, type AgentProcess } from './framework/agent.ts'
import { curl } from './framework/curl.ts'
import { eventually, startEdge, type Edge } from './framework/process.ts'
import { headerGroups, rawRequest, responses, startEchoUpstream } from './framework/raw.ts'

// Head-only traffic policies on the byte relay (src/proxy/relay-route.ts, relay-exchange.ts): every
// policy here runs on two endpoints, `r-*` as written (the relay takes it) and `p-*` with one more
// rule that never matches but needs the pipeline (url-rewrite). The same raw requests go to both,
// through the compiled binary; the upstream answers with the head it received, so the client-visible
// answers compare the upstream-received heads too. `warren_http_relayed_requests_total` proves
// which path served each request.

const KEY = 'e2e-relay-policy-key'

const a = startEchoUpstream('A')
const b = startEchoUpstream('B')

const POLICIES: Record<string, string> = {
  edits: `
    - expressions: ["req.method == 'GET' || req.method == 'POST'"]
      actions:
        - type: set-vars
          config: {vars: [{route: "\${req.url.path}"}, {multi: "\${'x-multi' in req.headers ? req.headers['X-Multi'][0] : 'none'}"}]}
    - expressions: ["'x-multi' in req.headers"]
      actions:
        - type: add-headers
          config: {headers: {x-multi: "added", x-multi-seen: "\${vars.multi}"}}
    - expressions: ["vars.missing == 'x'"]
      actions:
        - type: add-headers
          config: {headers: {x-never: "1"}}
    - actions:
        - type: remove-headers
          config: {headers: [X-Secret, x-absent]}
        - type: add-headers
          config: {headers: {x-client: "\${conn.client_ip}", X-Route: "\${vars.route}", x-forwarded-for: "10.9.9.9", x-count: "\${string(size(req.headers))}", x-bot: "\${string(req.user_agent.is_bot)}", x-removed: "\${actions.ngrok.remove_headers.headers_removed.join(',')}"}}
    - expressions: ["req.url.path.startsWith('/b')"]
      actions:
        - type: forward-external
          config: {url: "http://127.0.0.1:${b.port}"}
    - actions:
        - type: forward-external
          config: {url: "http://127.0.0.1:${a.port}"}
`,
  answers: `
    - expressions: ["req.url.path == '/deny'"]
      actions:
        - {type: deny, config: {status_code: 401}}
    - expressions: ["getQueryParam('q').size() > 0"]
      actions:
        - type: custom-response
          config: {status_code: 418, body: "q=\${req.url.query}", headers: {x-q: "\${getQueryParam('q')[0]}"}}
    - expressions: ["req.url.path == '/fail'"]
      actions:
        - type: add-headers
          config: {headers: {x-fail: "\${vars.nope}"}}
    - actions:
        - type: forward-external
          config: {url: "http://127.0.0.1:${a.port}"}
`,
}

/**
 * Requests (`HOST` stands for the endpoint's host); `piped`: the `answers` policy answers it from the
 * edge after a body, which the relay leaves to the pipeline (bodyless answers the engine writes itself).
 */
const REQUESTS: { raw: string; piped?: boolean }[] = [
  { raw: 'GET /a HTTP/1.1\r\nHost: HOST\r\nAccept: */*\r\nUser-Agent: curl/8.5\r\nConnection: close\r\n\r\n' },
  { raw: 'GET /b/./c?x=1 HTTP/1.1\r\nHost: HOST\r\nX-Multi: one\r\nx-multi: two\r\nX-Secret: s\r\nX-Forwarded-For: 1.1.1.1\r\nConnection: close\r\n\r\n' },
  { raw: 'POST /a/%2e%2e/b HTTP/1.1\r\nHost: HOST\r\nContent-Length: 5\r\nConnection: close, x-drop\r\nX-Drop: d\r\nX-Multi: m\r\n\r\nhello' },
  // The pipeline sends unsized uploads with fetch, which adds Connection (and Accept and User-Agent when missing): see `upstreamOf`.
  { raw: 'POST /up HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\nAccept: */*\r\nUser-Agent: t/1\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n' },
  { raw: "GET /b?'x' HTTP/1.1\r\nHost: HOST\r\nUser-Agent: Googlebot/2.1 (+http://www.google.com/bot.html)\r\nCookie: a=1\r\nConnection: close\r\n\r\n" },
  { raw: 'GET /deny HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n' },
  { raw: 'HEAD /deny HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n' },
  { raw: 'POST /deny HTTP/1.1\r\nHost: HOST\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc', piped: true },
  { raw: 'GET /q?q=x&q=y HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n' },
  { raw: 'GET /fail HTTP/1.1\r\nHost: HOST\r\nAccept: text/plain\r\nConnection: close\r\n\r\n' },
  { raw: 'POST /fail HTTP/1.1\r\nHost: HOST\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi', piped: true },
]

/** An agent endpoint's policy that does not forward: what it lets through goes to the agent. */
const AGENT_RULES = `
    - expressions: ["req.url.path.startsWith('/agent')"]
      actions:
        - type: set-vars
          config: {vars: {seen: "\${req.headers['x-multi'].join('+')}"}}
        - type: add-headers
          config: {headers: {x-multi: "\${vars.seen}", x-via: agent}}
    - expressions: ["req.url.path == '/deny'"]
      actions:
        - {type: deny, config: {status_code: 402}}
`

/** A policy that reads what only HTTPS has (the handshake's facts, the scheme), served over HTTPS/1.1. */
const TLS_RULES = `
    - expressions: ["req.url.scheme == 'https'", "conn.tls.sni.endsWith('.warren.localhost')"]
      actions:
        - type: add-headers
          config: {headers: {x-tls: "\${conn.tls.version}", x-sni: "\${conn.tls.sni}", x-alpn: "\${conn.tls.negotiated_alpn}", x-url: "\${req.url}", x-multi: "\${req.headers['x-multi'].join('+')}"}}
    - expressions: ["req.url.path == '/deny'"]
      actions:
        - {type: deny, config: {status_code: 403}}
    - actions:
        - {type: forward-external, config: {url: "http://127.0.0.1:${a.port}"}}
`

let edge: Edge
const agents: AgentProcess[] = []
beforeAll(async () => {
  const policies: Record<string, string> = {}
  for (const [name, rules] of Object.entries(POLICIES)) {
    policies[`r-${name}.yml`] = `url: http://r-${name}.warren.localhost\ntraffic_policy:\n  on_http_request:${rules}`
    // A first rule that never matches but needs the pipeline: the same policy, served the other way.
    const never = `\n    - expressions: ["false"]\n      actions:\n        - {type: url-rewrite, config: {from: "^/never$", to: "/x"}}`
    policies[`p-${name}.yml`] = `url: http://p-${name}.warren.localhost\ntraffic_policy:\n  on_http_request:${never}${rules}`
  }
  policies['r-tls.yml'] = `url: https://r-tls.warren.localhost\ntraffic_policy:\n  on_http_request:${TLS_RULES}`
  policies['p-tls.yml'] = `url: https://p-tls.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - expressions: ["false"]\n      actions:\n        - {type: url-rewrite, config: {from: "^/never$", to: "/x"}}${TLS_RULES}`
  edge = await startEdge({
    config: `api_keys: [${KEY}]\naccounts:\n  - name: alice\n    authtokens: [alice-token]\n    domains: ["*.warren.localhost"]\n`,
    policies,
  })
  const dir = mkdtempSync(join(tmpdir(), 'warren-relay-policy-'))
  for (const [twin, rules] of [
    ['r', AGENT_RULES],
    ['p', `\n    - expressions: ["false"]\n      actions:\n        - {type: url-rewrite, config: {from: "^/never$", to: "/x"}}${AGENT_RULES}`],
  ] as const) {
    writeFileSync(join(dir, `${twin}.yml`), `on_http_request:${rules}`)
    const agent = startAgent(['http', String(a.port), '--url', `http://${twin}-agent.warren.localhost`, '--traffic-policy-file', join(dir, `${twin}.yml`), ...edgeFlags(edge, 'alice-token')])
    agents.push(agent)
    await agent.forwarding(1, 20_000)
  }
})
afterAll(async () => {
  for (const agent of agents) await agent.stop()
  await edge?.stop()
  a.stop()
  b.stop()
})

async function relayed(): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${edge.apiPort}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })
  return Number(/^warren_http_relayed_requests_total (\d+)$/m.exec(await res.text())?.[1] ?? -1)
}

/** What the client saw, with the endpoint's own host name replaced, and the upstream's received head parsed. */
async function answer(host: string, raw: string) {
  const text = await rawRequest(edge.httpPort, raw.replace('HOST', host), 3000)
  const [res] = responses(text)
  expect(res).toBeDefined()
  const header = (name: string) => new RegExp(`\\r\\n${name}: ([^\\r]*)`, 'i').exec(res!.headers)?.[1]
  const body = res!.body.replaceAll(host, 'HOST')
  let upstream: unknown = body
  if (header('content-type') === 'application/json') {
    const got = JSON.parse(body) as { upstream: string; head: string; body: string }
    const [line, ...lines] = got.head.split('\r\n')
    const headers = headerGroups(lines)
    // fetch's own `Connection: keep-alive` toward the upstream (the pipeline's path for chunked uploads) is hop-by-hop: not the
    // policy's. (fetch also adds Accept and User-Agent when the head has none, even after a policy removed them: a pipeline
    // deviation the relay does not have, so no policy here removes those two.)
    if (/\r\ntransfer-encoding: chunked/i.test(raw)) delete headers['connection']
    upstream = { upstream: got.upstream, line, headers, body: got.body }
  }
  return { status: res!.status, code: header('warren-error-code'), q: header('x-q'), upstream }
}

describe('head-only policies on the byte relay', () => {
  for (const name of Object.keys(POLICIES))
    test.each(REQUESTS.map((r) => [r.raw.split('\r\n')[0]!, r] as const))(`${name}: %s answers as on the pipeline`, async (_line, req) => {
      const before = await relayed()
      const viaRelay = await answer(`r-${name}.warren.localhost`, req.raw)
      const relayedNow = req.piped && name === 'answers' ? before : before + 1
      expect(await eventually(async () => (await relayed()) === relayedNow)).toBe(true)
      const viaPipeline = await answer(`p-${name}.warren.localhost`, req.raw)
      expect(await eventually(async () => (await relayed()) === relayedNow)).toBe(true)
      expect(viaRelay).toEqual(viaPipeline)
      expect(viaRelay.status).toBeGreaterThanOrEqual(200)
    })

  test('the relay writes the edits into the head it sends: duplicates as lines of their own, the client order kept, additions last', async () => {
    const got = (await answer('r-edits.warren.localhost', REQUESTS[1]!.raw)).upstream as { upstream: string; line: string; headers: Record<string, string[]> }
    expect(got.upstream).toBe('B')
    expect(got.line).toBe('GET /b/c?x=1 HTTP/1.1')
    expect(got.headers['x-multi']).toEqual(['one', 'two', 'added'])
    expect(got.headers['x-multi-seen']).toEqual(['one, two'])
    expect(got.headers['x-secret']).toBeUndefined()
    expect(got.headers['x-forwarded-for']).toEqual(['1.1.1.1, 10.9.9.9, 127.0.0.1'])
    expect(got.headers['x-removed']).toEqual(['x-secret'])
    const text = await rawRequest(edge.httpPort, REQUESTS[1]!.raw.replace('HOST', 'r-edits.warren.localhost'), 3000)
    const head = (JSON.parse(responses(text)[0]!.body) as { head: string }).head
    // Client lines first, in the client's order and case; the policy's after them.
    expect(head).toMatch(/^GET \/b\/c\?x=1 HTTP\/1\.1\r\nHost: r-edits\.warren\.localhost\r\nX-Multi: one\r\nx-multi: two\r\nx-multi: added\r\nx-multi-seen: one, two\r\n/)
  })

  test('an answer the engine writes keeps the connection in step: pipelined requests after it are answered in order', async () => {
    const before = await relayed()
    const H = 'Host: r-answers.warren.localhost\r\n'
    const text = await rawRequest(edge.httpPort, `GET /deny HTTP/1.1\r\n${H}\r\nGET /a HTTP/1.1\r\n${H}\r\nGET /q?q=x HTTP/1.1\r\n${H}\r\nGET /a HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, 3000)
    const got = responses(text).map((r) => [r.status, r.status === 200 ? (JSON.parse(r.body) as { head: string }).head.split('\r\n')[0] : r.body])
    expect(got).toEqual([
      [401, ''],
      [200, 'GET /a HTTP/1.1'],
      [418, 'q=q=x'],
      [200, 'GET /a HTTP/1.1'],
    ])
    expect(await eventually(async () => (await relayed()) === before + 4)).toBe(true)
  })

  test('a path that URL parsing changes reaches the upstream as the policy saw it', async () => {
    const got = (await answer('r-edits.warren.localhost', REQUESTS[2]!.raw)).upstream as { line: string; headers: Record<string, string[]>; body: string }
    expect(got.line).toBe('POST /b HTTP/1.1')
    expect(got.headers['x-route']).toEqual(['/b'])
    expect(got.headers['x-drop']).toBeUndefined()
    expect(got.body).toBe('hello')
  })

  test.each(REQUESTS.filter((r) => r.raw.includes(' /fail ')).map((r) => [r.raw.split('\r\n')[0]!, r.raw] as const))(
    'a failing ${…} (%s) is answered once, with one warning in the log',
    async (_line, raw) => {
      const warnings = () => edge.logs().split('\n').filter((l) => l.includes('traffic policy evaluation failed') && l.includes('r-answers')).length
      const before = warnings()
      expect((await answer('r-answers.warren.localhost', raw)).code).toBe('ERR_WARREN_3900')
      expect(await eventually(async () => warnings() === before + 1)).toBe(true)
      await Bun.sleep(200)
      expect(warnings()).toBe(before + 1)
    },
  )

  test.each([
    ['GET /agent/x HTTP/1.1\r\nHost: HOST\r\nX-Multi: a\r\nX-Multi: b\r\nConnection: close\r\n\r\n', 1],
    ['POST /other HTTP/1.1\r\nHost: HOST\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi', 1],
    ['GET /deny HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n', 1],
    ['POST /deny HTTP/1.1\r\nHost: HOST\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi', 0],
  ] as const)('an agent endpoint: %j goes to the agent (or is answered) as on the pipeline', async (raw, counted) => {
    const before = await relayed()
    const viaRelay = await answer('r-agent.warren.localhost', raw)
    expect(await eventually(async () => (await relayed()) === before + counted)).toBe(true)
    const viaPipeline = await answer('p-agent.warren.localhost', raw)
    expect(await eventually(async () => (await relayed()) === before + counted)).toBe(true)
    expect(viaRelay).toEqual(viaPipeline)
    if (raw.includes('/deny')) expect(viaRelay.status).toBe(402)
    else expect((viaRelay.upstream as { upstream: string }).upstream).toBe('A')
  })

  test.each(['/a/./b?x=1', '/deny'])('over HTTPS/1.1: %s answers as on the pipeline, with the handshake\'s facts', async (path) => {
    const seen = async (host: string) => {
      const res = await curl(['--http1.1', '--cacert', edge.caPath, '-H', 'X-Multi: one', '-H', 'X-Multi: two', `https://${host}:${edge.httpsPort}${path}`])
      const body = res.body.replaceAll(host, 'HOST')
      if (res.headers['content-type'] !== 'application/json') return { status: res.status, code: res.headers['warren-error-code'], body }
      const got = JSON.parse(body) as { head: string }
      const [line, ...lines] = got.head.split('\r\n')
      return { status: res.status, line, headers: headerGroups(lines) }
    }
    const before = await relayed()
    const viaRelay = await seen('r-tls.warren.localhost')
    expect(await eventually(async () => (await relayed()) === before + 1)).toBe(true)
    const viaPipeline = await seen('p-tls.warren.localhost')
    expect(await eventually(async () => (await relayed()) === before + 1)).toBe(true)
    expect(viaRelay).toEqual(viaPipeline)
    if (path === '/deny') expect(viaRelay.status).toBe(403)
    else
      expect(viaRelay).toMatchObject({
        line: 'GET /a/b?x=1 HTTP/1.1',
        headers: { 'x-forwarded-proto': ['https'], 'x-sni': ['HOST'], 'x-alpn': ['http/1.1'], 'x-url': ['https://HOST:' + edge.httpsPort + '/a/b?x=1'], 'x-multi': ['one', 'two', 'one, two'] },
      })
  })
})
