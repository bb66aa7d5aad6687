import { describe, expect, test } from 'bun:test'
import { exchange, loadError, responded, run } from '../../../test/helpers/actions.ts'

const basic = (cred: string) => ({ authorization: `Basic ${Buffer.from(cred).toString('base64')}` })
const CONFIG = { realm: 'Admin', credentials: ['alice:correct-horse', 'bob:battery-staple:x'] }

describe('basic-auth config', () => {
  test.each<{ desc: string; config: unknown; want: RegExp | undefined }>([
    { desc: 'credentials', config: CONFIG, want: undefined },
    { desc: 'credentials required', config: {}, want: /^ERR_WARREN_2001: .*credentials/ },
    { desc: 'empty list', config: { credentials: [] }, want: /at least one credential/ },
    { desc: 'no colon', config: { credentials: ['alicepassword'] }, want: /credentials\[0\] must be "username:password"/ },
    { desc: 'empty username', config: { credentials: [':password1'] }, want: /username must not be empty/ },
    { desc: 'short password', config: { credentials: ['alice:short'] }, want: /8 to 128 characters/ },
    { desc: 'templated credential is checked per request', config: { credentials: ['${vars.cred}'] }, want: undefined },
    { desc: 'realm with quotes', config: { credentials: ['a:password1'], realm: 'a"b' }, want: /double quotes/ },
    { desc: 'realm not ASCII', config: { credentials: ['a:password1'], realm: 'zoë' }, want: /printable ASCII/ },
  ])('$desc', ({ config, want }) => {
    const got = loadError({ type: 'basic-auth', config })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('basic-auth at runtime', () => {
  test.each<{ desc: string; headers: Record<string, string>; config?: unknown; status?: number; result: { presented: boolean; username: string; authorized: boolean } }>([
    { desc: 'valid first credential', headers: basic('alice:correct-horse'), result: { presented: true, username: 'alice', authorized: true } },
    { desc: 'password with a colon (split at the first one)', headers: basic('bob:battery-staple:x'), result: { presented: true, username: 'bob', authorized: true } },
    { desc: 'wrong password', headers: basic('alice:wrong-horse'), status: 401, result: { presented: true, username: 'alice', authorized: false } },
    { desc: 'no header', headers: {}, status: 401, result: { presented: false, username: '', authorized: false } },
    { desc: 'bearer, not basic', headers: { authorization: 'Bearer abc' }, status: 401, result: { presented: false, username: '', authorized: false } },
    { desc: 'garbage base64', headers: { authorization: 'Basic !!!' }, status: 401, result: { presented: false, username: '', authorized: false } },
    { desc: 'enforce false lets it through', headers: basic('eve:whatever1'), config: { ...CONFIG, enforce: false }, result: { presented: true, username: 'eve', authorized: false } },
  ])('$desc', async ({ headers, config, status, result }) => {
    const ex = exchange('http://a.test/', { headersInit: headers })
    const outcome = await run({ type: 'basic-auth', config: config ?? CONFIG }, ex)
    expect(ex.actions['basic_auth']).toEqual({ credentials: result })
    if (status === undefined) return expect(outcome.kind).toBe('continue')
    const res = responded(outcome)!
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toBe('Basic realm="Admin", charset="UTF-8"')
    expect(res.headers.get('warren-error-code')).toBe('ERR_WARREN_2103')
  })

  test('default realm and templated credentials', async () => {
    const ex = exchange('http://a.test/', { headersInit: basic('carol:from-a-var') })
    ex.vars['cred'] = 'carol:from-a-var'
    expect((await run({ type: 'basic-auth', config: { credentials: ['${vars.cred}'] } }, ex)).kind).toBe('continue')
    const other = exchange()
    other.vars['cred'] = 'carol:from-a-var'
    const denied = responded(await run({ type: 'basic-auth', config: { credentials: ['x:${vars.cred}'] } }, other))!
    expect(denied.headers.get('www-authenticate')).toBe('Basic realm="ngrok", charset="UTF-8"')
  })
})
