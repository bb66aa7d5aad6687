import { describe, expect, test } from 'bun:test'
import { exchange, loadError, responded, run, type ActionCase } from '../../../test/helpers/actions.ts'

describe('deny config', () => {
  test.each<{ desc: string; c: ActionCase; want: RegExp | undefined }>([
    { desc: 'no config', c: { type: 'deny' }, want: undefined },
    { desc: 'status 404', c: { type: 'deny', config: { status_code: 404 } }, want: undefined },
    { desc: 'status out of range', c: { type: 'deny', config: { status_code: 99 } }, want: /^ERR_WARREN_2001: .*status_code/ },
    { desc: 'unknown key', c: { type: 'deny', config: { status: 404 } }, want: /^ERR_WARREN_2001: .*status/ },
    { desc: 'on_tcp_connect of a tcp endpoint', c: { type: 'deny', phase: 'on_tcp_connect', scheme: 'tcp' }, want: undefined },
    { desc: 'status_code in on_tcp_connect', c: { type: 'deny', phase: 'on_tcp_connect', scheme: 'tcp', config: { status_code: 403 } }, want: /no effect in on_tcp_connect/ },
    { desc: 'not in on_http_response', c: { type: 'deny', phase: 'on_http_response' }, want: /cannot run in on_http_response/ },
  ])('$desc', ({ c, want }) => {
    const got = loadError(c)
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('deny at runtime', () => {
  test.each<{ desc: string; c: ActionCase; status: number | 'close' }>([
    { desc: 'default 403', c: { type: 'deny' }, status: 403 },
    { desc: 'configured status', c: { type: 'deny', config: { status_code: 404 } }, status: 404 },
    { desc: 'on_tcp_connect closes', c: { type: 'deny', phase: 'on_tcp_connect', scheme: 'tcp' }, status: 'close' },
  ])('$desc', async ({ c, status }) => {
    const outcome = await run(c, exchange())
    if (status === 'close') return expect(outcome.kind).toBe('close')
    const res = responded(outcome)!
    expect(res.status).toBe(status)
    expect(res.headers.get('warren-error-code')).toBe('ERR_WARREN_2101')
    expect(await res.text()).toBe('')
  })
})
