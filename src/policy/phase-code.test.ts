import { describe, expect, test } from 'bun:test'
import { compilePolicy, runPhase, validatePolicy, type CompiledRule } from './engine.ts'
import { testExchange } from './expr/testing.ts'
import { phaseSource } from './phase-code.ts'
import type { HttpExchange, Outcome } from './types.ts'

function policy(raw: unknown) {
  return compilePolicy(validatePolicy(raw), { scheme: 'https', cloud: false })
}

/** What a run left: the outcome (status and body for answers), the variables, the request headers. */
async function result(rules: readonly CompiledRule[], ex: HttpExchange, traced: boolean): Promise<unknown> {
  const outcome: Outcome = await runPhase(rules, ex, traced ? { trace: () => {} } : {})
  const answer = outcome.kind === 'respond' ? { status: outcome.response.status, body: await outcome.response.text() } : undefined
  return { kind: outcome.kind, answer, url: outcome.kind === 'forward' ? outcome.target.url.href : undefined, vars: ex.vars, headers: [...ex.headers], actions: ex.actions }
}

const POLICIES: Record<string, unknown> = {
  'conditions, edits and an answer': {
    on_http_request: [
      { expressions: ["req.method == 'GET'", "req.url.path.startsWith('/a')"], actions: [{ type: 'set-vars', config: { vars: { tag: '${req.url.path}' } } }] },
      { expressions: ["'x-key' in req.headers"], actions: [{ type: 'add-headers', config: { headers: { 'x-seen': '${req.headers["x-key"][0]}' } } }] },
      { expressions: ["req.headers['x-key'][0] == 'k1'"], actions: [{ type: 'remove-headers', config: { headers: ['x-key'] } }] },
      // Declined by the fast code (a missing header), then failed in cel-js: the rule is skipped.
      { expressions: ["req.headers['x-none'][0] == 'v'"], actions: [{ type: 'custom-response', config: { status_code: 410 } }] },
      // No fast form (a macro): the condition goes through cel-js alone.
      { expressions: ["req.headers.exists(k, k == 'x-seen') && size(vars) > 0"], actions: [{ type: 'add-headers', config: { headers: { 'x-both': '1' } } }] },
      { expressions: ["req.url.query_params['fail'][0] == '1'"], actions: [{ type: 'custom-response', config: { body: '${vars.missing}' } }] },
      { expressions: ["vars.tag == '/a/stop'"], actions: [{ type: 'deny', config: { status_code: 403 } }] },
      { actions: [{ type: 'set-vars', config: { vars: { last: true } } }, { type: 'forward-external', config: { url: 'http://127.0.0.1:9' } }] },
    ],
  },
}

/** Rules built by hand: an action that settles later, as the body and side-request actions do, then more rules. */
function asyncRules(): CompiledRule[] {
  const later = policy({
    on_http_request: [
      { expressions: ["req.method == 'POST'"], actions: [{ type: 'custom-response', config: { status_code: 201, body: 'after' } }] },
      { actions: [{ type: 'set-vars', config: { vars: { seen: '${vars.early}' } } }] },
    ],
  }).on_http_request
  const early = {
    name: 'async',
    conditions: [],
    actions: [
      async (ex: HttpExchange): Promise<Outcome> => {
        ex.vars['early'] = ex.method
        return { kind: 'continue' }
      },
      async (ex: HttpExchange): Promise<Outcome> => (ex.method === 'DELETE' ? Promise.reject(new Error('refused')) : { kind: 'continue' }),
    ],
  }
  return [early, ...later]
}

const REQUESTS = [
  { method: 'GET', url: '/a/b', headers: { 'x-key': 'k1' } },
  { method: 'GET', url: '/a/stop', headers: {} },
  { method: 'GET', url: '/x?fail=1', headers: { 'X-Key': 'k2' } },
  { method: 'POST', url: '/a', headers: { 'content-type': 'text/plain' }, body: 'aaa' },
  { method: 'DELETE', url: '/', headers: {} },
]

describe('generated phase functions', () => {
  test.each(Object.keys(POLICIES).flatMap((p) => REQUESTS.map((r) => [p, r] as const)))('%s: %j runs as the engine loop runs it', async (name, request) => {
    const rules = policy(POLICIES[name]).on_http_request
    const generated = await result(rules, testExchange(request), false)
    const looped = await result(rules, testExchange(request), true)
    expect(generated).toEqual(looped)
  })

  test.each(REQUESTS)('an action that returns a promise hands the rest of the phase on: %j', async (request) => {
    const rules = asyncRules()
    if (request.method === 'DELETE') {
      await expect(runPhase(rules, testExchange(request))).rejects.toThrow('refused')
      return
    }
    const generated = await result(rules, testExchange(request), false)
    expect(generated).toEqual(await result(rules, testExchange(request), true))
    expect(generated).toMatchObject(request.method === 'POST' ? { answer: { status: 201, body: 'after' } } : { kind: 'continue', vars: { early: 'GET', seen: 'GET' } })
  })

  test('a phase is one function with each condition inlined', () => {
    const { source } = phaseSource(policy(POLICIES['conditions, edits and an answer']).on_http_request)
    expect(source.match(/function/g)).toHaveLength(1)
    expect(source).toContain('.startsWith(')
    expect(source).toContain('m = X.condition(4, 0, rt.context(ex))') // the macro has no fast form
    // `req.method`, `req.url.path` and `vars` are read from the exchange: rule 1 makes no variables.
    expect(source).toContain('(t0 = ex.method)')
    expect(source).toContain('(ex.urlParts ?? ex.url).pathname')
    expect(source).toContain('rt.field(ex.vars, "tag")')
    expect(source.split('r1: {')[0]!.replaceAll('X.condition(0, 0, rt.context(ex))', '').replaceAll('X.condition(0, 1, rt.context(ex))', '')).not.toContain('rt.context(ex)')
  })

  // (`${…}` in a payload would be a template expression: fast.test.ts has that one for expressions.)
  const hostile = ['"); globalThis.pwned = 1; ("', "'); globalThis.pwned = 1; ('", '` + (globalThis.pwned = 1) + `', '*/ globalThis.pwned = 1 /*', '\\"); globalThis.pwned = 1; //', '}} globalThis.pwned = 1; {{']
  const g = globalThis as { pwned?: unknown }

  test.each(hostile)('user text never becomes code: %p', async (payload) => {
    delete g.pwned
    // Header names are tokens, which still allow quotes, backticks and pipes.
    const header = "x-'`|pwned"
    const p = policy({
      on_http_request: [
        {
          name: payload,
          expressions: [`req.method == ${JSON.stringify(payload)} || vars[${JSON.stringify(payload)}] == 'x' || !req.url.path.contains(${JSON.stringify(payload)})`],
          actions: [
            { type: 'add-headers', config: { headers: { [header]: `${payload} \${req.method} ${payload}` } } },
            { type: 'set-vars', config: { vars: { out: `\${${JSON.stringify(payload)} + req.method}` } } },
          ],
        },
        { name: payload, actions: [{ type: 'custom-response', config: { status_code: 200, body: payload } }] },
      ],
    })
    const { source } = phaseSource(p.on_http_request)
    // The payload is in the source only as JSON string literals of the expression; nothing else of the policy is.
    expect(source.replaceAll(JSON.stringify(payload), '""')).not.toContain('pwned')
    const ex = testExchange({ method: 'GET', url: '/a' })
    const outcome = await runPhase(p.on_http_request, ex)
    expect(outcome.kind === 'respond' && (await outcome.response.text())).toBe(payload)
    expect(ex.headers.get(header)).toBe(`${payload} GET ${payload}`)
    expect(ex.vars['out']).toBe(`${payload}GET`)
    expect(g.pwned).toBeUndefined()
  })
})
