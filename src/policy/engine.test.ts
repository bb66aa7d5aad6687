import { describe, expect, test } from 'bun:test'
import { compilePolicy, relayPlan, runPhase, validatePolicy, type TraceEvent } from './engine.ts'
import { testExchange } from './expr/testing.ts'

function policy(raw: unknown) {
  return compilePolicy(validatePolicy(raw), { scheme: 'https', cloud: false })
}

describe('runPhase()', () => {
  test('a ${…} that fails at request time answers 500 with ERR_WARREN_3900 and stops the phase', async () => {
    const p = policy({
      on_http_request: [
        { actions: [{ type: 'custom-response', config: { body: 'hi ${vars.missing}' } }] },
        { actions: [{ type: 'custom-response', config: { status_code: 201 } }] },
      ],
    })
    const outcome = await runPhase(p.on_http_request, testExchange({ headers: { accept: 'text/plain' } }))
    expect(outcome.kind).toBe('respond')
    if (outcome.kind !== 'respond') return
    expect(outcome.response.status).toBe(500)
    expect(outcome.response.headers.get('warren-error-code')).toBe('ERR_WARREN_3900')
    const body = await outcome.response.text()
    expect(body).toContain('ERR_WARREN_3900')
    expect(body).not.toContain('vars.missing')
  })

  test('later rules see what earlier actions changed, though the variables are shared across rules', async () => {
    const p = policy({
      on_http_request: [
        // Reads req.headers and req.url first, so both are computed before the actions change them.
        { expressions: ["!('x-tag' in req.headers) && req.url.path == '/a'"], actions: [{ type: 'add-headers', config: { headers: { 'x-tag': 'one' } } }] },
        { expressions: ["'x-tag' in req.headers"], actions: [{ type: 'url-rewrite', config: { from: '/a$', to: '/b' } }] },
        { expressions: ["req.url.path == '/b'"], actions: [{ type: 'set-vars', config: { vars: [{ seen: '${req.headers["x-tag"][0]}' }] } }] },
        { expressions: ["vars.seen == 'one'"], actions: [{ type: 'custom-response', config: { status_code: 209 } }] },
        { actions: [{ type: 'custom-response', config: { status_code: 500 } }] },
      ],
    })
    const outcome = await runPhase(p.on_http_request, testExchange({ url: '/a' }))
    expect(outcome.kind === 'respond' && outcome.response.status).toBe(209)
  })

  test('after add-headers only the header variables are recomputed: later rules see the new headers and the same URL', async () => {
    const p = policy({
      on_http_request: [
        // Computes req.headers, req.host and req.url before add-headers changes the headers.
        { expressions: ["size(req.headers) > 0 && req.host == 'api.example.com' && req.url.path == '/a'"], actions: [{ type: 'add-headers', config: { headers: { 'x-tag': 'one', host: 'other.example' } } }] },
        { expressions: ["req.headers['x-tag'][0] == 'one' && req.host == 'other.example' && req.url.path == '/a'"], actions: [{ type: 'remove-headers', config: { headers: ['x-tag'] } }] },
        { expressions: ["'x-tag' in req.headers || size(req.headers) != 1 || req.headers['host'][0] != 'other.example'"], actions: [{ type: 'custom-response', config: { status_code: 500 } }] },
        { expressions: ["!('X-Tag' in req.headers) && req.host == 'other.example'"], actions: [{ type: 'custom-response', config: { status_code: 209 } }] },
        { actions: [{ type: 'custom-response', config: { status_code: 500 } }] },
      ],
    })
    const outcome = await runPhase(p.on_http_request, testExchange({ url: '/a' }))
    expect(outcome.kind === 'respond' && outcome.response.status).toBe(209)
  })

  test('add-headers in on_http_response drops the res variables it changed', async () => {
    const p = policy({
      on_http_response: [
        { expressions: ["size(res.headers) == 0 && res.status_code == 200"], actions: [{ type: 'add-headers', config: { headers: { 'content-type': 'text/x-tag' } } }] },
        { expressions: ["res.content_type == 'text/x-tag' && res.headers['content-type'][0] == 'text/x-tag'"], actions: [{ type: 'custom-response', config: { status_code: 209 } }] },
      ],
    })
    const outcome = await runPhase(p.on_http_response, testExchange({ url: '/a' }, { response: { status: 200, headers: new Headers() } }))
    expect(outcome.kind === 'respond' && outcome.response.status).toBe(209)
  })

  test('an expression that fails skips its rule (ngrok: the rule does not match)', async () => {
    const p = policy({
      on_http_request: [
        { expressions: ['vars.missing == 1'], actions: [{ type: 'custom-response', config: { status_code: 418 } }] },
        { actions: [{ type: 'custom-response', config: { status_code: 204 } }] },
      ],
    })
    const outcome = await runPhase(p.on_http_request, testExchange())
    expect(outcome.kind === 'respond' && outcome.response.status).toBe(204)
  })

  test('trace reports every rule looked at, each expression result, and each action outcome', async () => {
    const p = policy({
      on_http_request: [
        { name: 'first', expressions: ["req.url.path == '/a'", 'vars.never'], actions: [{ type: 'custom-response', config: {} }] },
        { name: 'second', expressions: ["req.method == 'GET'", 'vars.x.y'], actions: [{ type: 'custom-response', config: {} }] },
        { expressions: ['true'], actions: [{ type: 'forward-external', config: { url: 'http://127.0.0.1:9' } }] },
        { actions: [{ type: 'custom-response', config: {} }] },
      ],
    })
    const events: TraceEvent[] = []
    const outcome = await runPhase(p.on_http_request, testExchange({ url: '/b' }), { trace: (e) => events.push(e) })
    expect(outcome.kind).toBe('forward')
    expect(events).toEqual([
      { type: 'rule', rule: 0, name: 'first', matched: false, conditions: [{ value: false }] },
      { type: 'rule', rule: 1, name: 'second', matched: false, conditions: [{ value: true }, { error: 'No such key: x (at column 6)' }] },
      { type: 'rule', rule: 2, name: 'rule 3', matched: true, conditions: [{ value: true }] },
      { type: 'action', rule: 2, action: 0, outcome: expect.objectContaining({ kind: 'forward' }) },
    ])
  })

  test('expressions are checked against their phase at compile time', () => {
    expect(() => policy({ on_http_request: [{ expressions: ['res.status_code == 200'] }] })).toThrow(/res is not available in on_http_request/)
    expect(() => policy({ on_http_response: [{ expressions: ['res.status_code == 200'] }] })).not.toThrow()
  })
})

describe('validatePolicy() reports every problem at once', () => {
  test('a CEL error is reported with an unknown action in the same rule', () => {
    let issues: { code: string; path: (string | number)[] }[] = []
    try {
      validatePolicy({ on_http_request: [{ expressions: ['req.url.path.startsWith('], actions: [{ type: 'nosuch' }] }] })
    } catch (err) {
      issues = (err as { issues: typeof issues }).issues
    }
    expect(issues.map((i) => [i.code, i.path.join('.')]).sort()).toEqual([
      ['ERR_WARREN_2001', 'on_http_request.0.actions.0.type'],
      ['ERR_WARREN_2002', 'on_http_request.0.expressions.0'],
    ])
  })
})

describe('relayPlan()', () => {
  const forward = { actions: [{ type: 'forward-external', config: { url: 'http://127.0.0.1:9000' } }] }
  const addHeader = (name: string) => ({ type: 'add-headers', config: { headers: { [name]: 'v' } } })
  test('a policy that only forwards to http:// (or does nothing) relays without rules to run', () => {
    expect(relayPlan(policy({ on_http_request: [forward] }))?.url?.href).toBe('http://127.0.0.1:9000/')
    expect(relayPlan(policy({}))).toEqual({})
    expect(relayPlan(policy({ on_tcp_connect: [{ actions: [{ type: 'restrict-ips', config: { allow: ['127.0.0.0/8'] } }] }] }))).toEqual({})
  })

  test('on_http_request rules that read the head, edit its header lines, set vars, forward to http:// or answer run on the relay', () => {
    for (const raw of [
      { on_http_request: [{ ...forward, expressions: ["req.url.path == '/'"] }] },
      { on_http_request: [{ actions: [addHeader('x-a'), { type: 'remove-headers', config: { headers: ['x-b'] } }, forward.actions[0]] }] },
      { on_http_request: [{ actions: [{ type: 'set-vars', config: { vars: { a: '${req.method}' } } }, addHeader('x-forwarded-for')] }] },
      { on_http_request: [{ actions: [{ type: 'custom-response', config: { body: 'x' } }] }] },
      { on_http_request: [{ expressions: ["req.method == 'POST'"], actions: [{ type: 'deny', config: {} }] }, forward] },
    ]) {
      const compiled = policy(raw)
      expect(relayPlan(compiled)).toEqual({ rules: compiled.on_http_request })
    }
  })

  test('anything else takes the pipeline', () => {
    for (const raw of [
      { on_http_request: [forward], on_http_response: [{ actions: [addHeader('a')] }] },
      { on_http_request: [{ actions: [{ type: 'forward-external', config: { url: 'https://127.0.0.1:9000' } }] }] },
      { on_http_request: [{ expressions: ['true'], actions: [{ type: 'forward-external', config: { url: 'https://127.0.0.1:9000' } }] }, forward] },
      { on_http_request: [forward], on_event_stream_message: [{ actions: [{ type: 'sse-find-replace', config: { replacements: [{ from: 'a', to: 'b' }] } }] }] },
      { on_http_request: [{ actions: [{ type: 'url-rewrite', config: { from: '/a', to: '/b' } }] }, forward] },
      { on_http_request: [{ actions: [{ type: 'log', config: { metadata: { a: 'b' } } }] }, forward] },
      // Fields the edge itself decides on (routing, framing): the pipeline's client handles them.
      ...['Host', 'content-length', 'transfer-encoding', 'expect'].map((name) => ({ on_http_request: [{ actions: [addHeader(name)] }, forward] })),
      { on_http_request: [{ actions: [{ type: 'remove-headers', config: { headers: ['Content-Length'] } }] }, forward] },
    ])
      expect(relayPlan(policy(raw))).toBeUndefined()
  })
})
