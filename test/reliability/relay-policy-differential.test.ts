/**
 * Head-only traffic policies on the byte relay against the same policies on the pipeline, over random
 * requests, through the compiled edge. One policy (header edits, vars, expressions that fail, answers
 * from the edge, routing by path) runs on two endpoints: `r.` as written (the relay takes it) and `p.`
 * with a first rule that never matches but needs the pipeline. Each random request (method, path with
 * dot segments and odd query bytes, repeated and hop-by-hop and Connection-named header lines, bodies)
 * goes to both; the upstreams answer with the head they received. What must hold for every request:
 * the client sees the same status, error code and upstream-received head (each field's value, its
 * lines joined) from both, and the relay counter moves exactly for the requests the relay serves.
 *
 * Count: WARREN_FUZZ_RELAY_POLICY_COUNT requests (default 300, ~10 s), WARREN_FUZZ_SEED as for the
 * other fuzzers.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { envInt, fuzzSettings, makeRng, type Rng } from '../helpers/fuzz.ts'
import { eventually, startEdge, type Edge } from '../e2e/framework/process.ts'
import { headerGroups, rawRequest, responses, startEchoUpstream } from '../e2e/framework/raw.ts'

const { seed: SEED } = fuzzSettings()
const COUNT = envInt('WARREN_FUZZ_RELAY_POLICY_COUNT') ?? 300
const KEY = 'relay-policy-fuzz-key'

const a = startEchoUpstream('A')
const b = startEchoUpstream('B')

const RULES = `
    - expressions: ["req.url.path.startsWith('/deny')"]
      actions:
        - {type: deny, config: {status_code: 401}}
    - expressions: ["getQueryParam('q').size() > 1"]
      actions:
        - type: custom-response
          config: {status_code: 418, body: "\${req.url.query}", headers: {x-q: "\${getQueryParam('q')[0]}"}}
    - expressions: ["req.url.path.contains('fail')"]
      actions:
        - type: add-headers
          config: {headers: {x-fail: "\${vars.nope}"}}
    - actions:
        - type: set-vars
          config: {vars: [{route: "\${req.url.path}"}, {multi: "\${'x-multi' in req.headers ? req.headers['X-Multi'][0] : 'none'}"}]}
    - expressions: ["'x-multi' in req.headers", "vars.route != '/'"]
      actions:
        - type: add-headers
          config: {headers: {x-multi: added, x-seen: "\${vars.multi}"}}
    - expressions: ["vars.missing == 1"]
      actions:
        - {type: add-headers, config: {headers: {x-never: "1"}}}
    - actions:
        - type: remove-headers
          config: {headers: [X-Secret, x-drop]}
        - type: add-headers
          config:
            headers:
              x-count: "\${string(size(req.headers))}"
              x-bot: "\${string(req.user_agent.is_bot)}"
              x-type: "\${req.content_type}"
              x-sid: "\${'sid' in req.cookies ? req.cookies['sid'][0].value : '-'}"
              x-len: "\${string(req.content_length)}"
              x-forwarded-for: 10.9.9.9
    - expressions: ["req.url.path.startsWith('/b')"]
      actions:
        - {type: forward-external, config: {url: "http://127.0.0.1:${b.port}"}}
    - actions:
        - {type: forward-external, config: {url: "http://127.0.0.1:${a.port}"}}
`

let edge: Edge
beforeAll(async () => {
  const never = `\n    - expressions: ["false"]\n      actions:\n        - {type: url-rewrite, config: {from: "^/never$", to: "/x"}}`
  edge = await startEdge({
    config: `api_keys: [${KEY}]\n`,
    policies: {
      'r.yml': `url: http://r.warren.localhost\ntraffic_policy:\n  on_http_request:${RULES}`,
      'p.yml': `url: http://p.warren.localhost\ntraffic_policy:\n  on_http_request:${never}${RULES}`,
    },
  })
})
afterAll(async () => {
  await edge?.stop()
  a.stop()
  b.stop()
})

async function relayed(): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${edge.apiPort}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })
  return Number(/^warren_http_relayed_requests_total (\d+)$/m.exec(await res.text())?.[1] ?? -1)
}

const SEGMENTS = ['a', 'b', 'deny', 'fail', '..', '.', '%2e%2e', '%2E', 'x%20y', 'caf%C3%A9', "it's", 'a;b=c', '']
const QUERIES = ['', '?', '?q=x', '?q=x&q=y', "?a='1'", '?a=%20&b', '?q=1&q=2&q=3']
const USER_AGENTS = ['curl/8.5', 'Googlebot/2.1 (+http://www.google.com/bot.html)', 'Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0']

/** One random request for `host`: its bytes, and whether it carries a body. */
function randomRequest(rng: Rng, host: string): { raw: string; body: boolean } {
  const method = rng.pick(['GET', 'GET', 'POST', 'HEAD', 'DELETE', 'PUT'])
  const chunked = (method === 'POST' || method === 'PUT') && rng.chance(0.2)
  // The pipeline sends a chunked upload with fetch, which also turns a leading `//` into `/`: no empty segments then.
  const segments = chunked ? SEGMENTS.filter((s) => s !== '') : SEGMENTS
  const path = '/' + Array.from({ length: 1 + rng.int(3) }, () => rng.pick(segments)).join('/') + rng.pick(QUERIES)
  const lines = [`Host: ${host}`]
  const drop = rng.chance(0.3)
  const pool = [
    () => `X-Multi: ${rng.pick(['one', 'two', 'é'])}`,
    () => `x-multi: ${rng.pick(['three', 'a, b'])}`,
    () => 'X-Secret: s',
    () => 'X-Drop: d',
    () => 'Accept: */*',
    () => `User-Agent: ${rng.pick(USER_AGENTS)}`,
    () => `Cookie: ${rng.pick(['sid=s1; a=b', 'a=1', 'sid=s2'])}`,
    () => `X-Forwarded-For: ${rng.pick(['1.2.3.4', '1.2.3.4, 5.6.7.8'])}`,
    () => 'TE: trailers',
    () => 'Set-Cookie: a=1',
    () => `Content-Type: ${rng.pick(['text/plain; charset=utf-8', 'application/json'])}`,
    () => 'Keep-Alive: timeout=5',
  ]
  for (let n = rng.int(6); n > 0; n--) lines.push(rng.pick(pool)())
  lines.push(drop ? 'Connection: close, x-drop' : 'Connection: close')
  let body = ''
  const hasBody = chunked || ((method === 'POST' || method === 'PUT') && rng.chance(0.6))
  if (hasBody) {
    body = rng.pick(['x', 'hello', '{"a":1}'])
    if (chunked) {
      // The pipeline sends a chunked upload with fetch, which adds Accept and User-Agent when they are missing: give both.
      lines.push('Transfer-Encoding: chunked', 'Accept: */*', `User-Agent: ${USER_AGENTS[0]}`)
      body = `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`
    } else lines.push(`Content-Length: ${body.length}`)
  }
  return { raw: `${method} ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n${body}`, body: hasBody }
}

/** What the client saw from one endpoint, its host name replaced, the upstream's received head grouped. */
async function seen(host: string, raw: string) {
  const text = await rawRequest(edge.httpPort, raw, 3000)
  const res = responses(text, () => raw.startsWith('HEAD '))[0]
  if (!res) return { status: 0, text }
  const header = (name: string) => new RegExp(`\\r\\n${name}: ([^\\r]*)`, 'i').exec(res.headers)?.[1]
  let upstream: unknown = res.body.replaceAll(host, 'HOST')
  if (header('content-type') === 'application/json' && res.body) {
    const got = JSON.parse(res.body) as { upstream: string; head: string; body: string }
    const [line, ...lines] = got.head.replaceAll(host, 'HOST').split('\r\n')
    // Values per name as one field value: the pipeline joins repeated lines where it cannot keep them (Cookie, which
    // Headers joins with `; `; every name on its fetch path for chunked uploads); the relay keeps the client's lines.
    const headers = Object.fromEntries(Object.entries(headerGroups(lines)).map(([name, values]) => [name, values.join(name === 'cookie' ? '; ' : ', ')]))
    // fetch's own `Connection: keep-alive` toward the upstream (the pipeline's path for chunked uploads) is hop-by-hop, not the policy's.
    if (/\r\ntransfer-encoding: chunked/i.test(raw)) delete headers['connection']
    upstream = { upstream: got.upstream, line, headers, body: got.body }
  }
  return { status: res.status, code: header('warren-error-code'), q: header('x-q'), upstream }
}

test(`${COUNT} random requests: the relay answers as the pipeline does (seed ${SEED})`, async () => {
  const before = await relayed()
  let expected = 0
  const differences: string[] = []
  for (let n = 0; n < COUNT; n++) {
    // One generator per request: a failure names its request, and a run of fewer requests makes the same ones.
    const req = randomRequest(makeRng(SEED + n), 'HOST')
    const [viaRelay, viaPipeline] = [await seen('r.warren.localhost', req.raw.replace('HOST', 'r.warren.localhost')), await seen('p.warren.localhost', req.raw.replace('HOST', 'p.warren.localhost'))]
    if (JSON.stringify(viaRelay) !== JSON.stringify(viaPipeline)) differences.push(`${JSON.stringify(req.raw)}\n  relay:    ${JSON.stringify(viaRelay)}\n  pipeline: ${JSON.stringify(viaPipeline)}`)
    // The relay serves what it forwards, and the answers it makes itself unless the request has a body.
    const forwarded = typeof viaRelay.upstream === 'object' || (req.raw.startsWith('HEAD ') && viaRelay.status === 200)
    if (forwarded || !req.body) expected++
  }
  expect(differences.slice(0, 3)).toEqual([])
  // Exactly the relay twin's: the pipeline twin's requests never count.
  expect(await eventually(async () => (await relayed()) === before + expected, 5000)).toBe(true)
  expect(expected).toBeGreaterThan(COUNT / 2)
})
