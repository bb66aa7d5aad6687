import { describe, expect, test } from 'bun:test'
import { exchange, loadError, run } from '../../../test/helpers/actions.ts'

describe('set-vars config', () => {
  test.each<{ desc: string; config: unknown; want: RegExp | undefined }>([
    { desc: 'list of one-entry maps', config: { vars: [{ a: 1 }, { b: 'x' }] }, want: undefined },
    { desc: 'two keys in one entry', config: { vars: [{ a: 1, b: 2 }] }, want: /exactly one variable/ },
    { desc: 'empty list', config: { vars: [] }, want: /needs at least one variable/ },
    { desc: 'bad name', config: { vars: [{ 'a-b': 1 }] }, want: /not a valid variable name/ },
    { desc: 'bad expression', config: { vars: [{ a: '${req.}' }] }, want: /^ERR_WARREN_2002: / },
    // ngrok's pages also write the variables as one map: `vars: { user_id: "…", tier: gold }`.
    { desc: 'a map of name to value', config: { vars: { user_id: '${req.headers["X-User-Id"][0]}', tier: 'gold' } }, want: undefined },
    { desc: 'an empty map', config: { vars: {} }, want: /needs at least one variable/ },
    { desc: 'a bad name in the map', config: { vars: { 'a-b': 1 } }, want: /not a valid variable name/ },
    { desc: 'a bad expression in the map', config: { vars: { a: '${req.}' } }, want: /^ERR_WARREN_2002: / },
    { desc: 'neither a list nor a map', config: { vars: 'a=1' }, want: /list of one-entry maps or a map/ },
  ])('$desc', ({ config, want }) => {
    const got = loadError({ type: 'set-vars', config })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('set-vars at runtime', () => {
  test('keeps YAML types, types whole expressions, interpolates the rest, sees earlier vars', async () => {
    const ex = exchange('http://a.test/p?q=1')
    await run(
      {
        type: 'set-vars',
        config: {
          vars: [
            { s: 'bar' },
            { n: 3 },
            { d: 1.5 },
            { b: true },
            { z: null },
            { list: [1, 'two'] },
            { map: { path: '${req.url.path}' } },
            { port: '${req.url.port}' },
            { msg: 'ip ${conn.client_ip}' },
            { again: '${vars.s + "!"}' },
          ],
        },
      },
      ex,
    )
    expect(ex.vars).toEqual({ s: 'bar', n: 3n, d: 1.5, b: true, z: null, list: [1n, 'two'], map: { path: '/p' }, port: 80n, msg: 'ip 203.0.113.7', again: 'bar!' })
  })

  test('the map form sets its variables in order, as the list form does', async () => {
    const ex = exchange('http://a.test/p', { headersInit: { 'x-user-id': 'u7' } })
    await run({ type: 'set-vars', config: { vars: { user_id: "${req.headers['X-User-Id'][0]}", greeting: 'hi ${vars.user_id}' } } }, ex)
    expect(ex.vars).toEqual({ user_id: 'u7', greeting: 'hi u7' })
  })

  test('later rules read the variables in expressions', async () => {
    const { compile } = await import('../../../test/helpers/actions.ts')
    const { runPhase } = await import('../engine.ts')
    const policy = compile({
      on_http_request: [
        { actions: [{ type: 'set-vars', config: { vars: [{ tier: 'gold' }] } }] },
        { expressions: ["vars.tier == 'gold'"], actions: [{ type: 'custom-response', config: { body: 'hi ${vars.tier}' } }] },
      ],
    })
    const outcome = await runPhase(policy.on_http_request, exchange())
    expect(outcome.kind).toBe('respond')
    if (outcome.kind === 'respond') expect(await outcome.response.text()).toBe('hi gold')
  })

  test('a value that fails to evaluate fails the request with ERR_WARREN_3900', async () => {
    const ex = exchange()
    const outcome = await run({ type: 'set-vars', config: { vars: [{ h: "${req.headers['x-missing'][0]}" }, { ok: 1 }] } }, ex).catch((err: Error) => err)
    // The engine turns the WarrenError into a 500 answer; older engines let it propagate.
    if (outcome instanceof Error) expect((outcome as { code?: string }).code).toBe('ERR_WARREN_3900')
    else expect(outcome.kind === 'respond' && outcome.response.headers.get('warren-error-code')).toBe('ERR_WARREN_3900')
    expect(ex.vars).toEqual({})
  })
})
