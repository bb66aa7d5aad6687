import { describe, expect, test } from 'bun:test'
import { exchange, loadError, run, type ActionCase } from '../../../test/helpers/actions.ts'

describe('close-connection', () => {
  test.each<{ desc: string; c: ActionCase; want: RegExp | undefined }>([
    { desc: 'no config', c: { type: 'close-connection' }, want: undefined },
    { desc: 'empty config', c: { type: 'close-connection', config: {} }, want: undefined },
    { desc: 'any key is unknown', c: { type: 'close-connection', config: { now: true } }, want: /^ERR_WARREN_2001: .*now/ },
    { desc: 'on_tcp_connect', c: { type: 'close-connection', phase: 'on_tcp_connect', scheme: 'tcp' }, want: undefined },
    { desc: 'not in on_http_response', c: { type: 'close-connection', phase: 'on_http_response' }, want: /cannot run in on_http_response/ },
  ])('config: $desc', ({ c, want }) => {
    const got = loadError(c)
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })

  test.each<{ desc: string; c: ActionCase }>([
    { desc: 'on_http_request', c: { type: 'close-connection' } },
    { desc: 'on_tcp_connect', c: { type: 'close-connection', phase: 'on_tcp_connect', scheme: 'tcp' } },
  ])('closes in $desc', async ({ c }) => {
    expect((await run(c, exchange())).kind).toBe('close')
  })
})
