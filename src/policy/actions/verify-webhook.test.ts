import { describe, expect, test } from 'bun:test'
import { exchange, loadError, responded, run } from '../../../test/helpers/actions.ts'
import { bodySha256, SIGNERS, tamper, type SignerCase } from '../../../test/helpers/webhook-signers.ts'
import { BUFFER_LIMIT } from './request-body-find-replace.ts'

const URL_ = 'https://hooks.example.com/incoming?x=1'

function delivery(s: SignerCase, options: { body?: string; signedBody?: string; now?: number; contentType?: string; url?: string } = {}) {
  const body = options.body ?? '{"event":"push","id":42}'
  const contentType = options.contentType ?? 'application/json'
  const url = options.url ?? URL_
  const headers = { 'content-type': contentType, ...s.sign({ url, body: options.signedBody ?? body, contentType, now: options.now ?? Math.floor(Date.now() / 1000) }) }
  const ex = exchange(url, { method: 'POST', body: new Response(body).body, headersInit: headers })
  return { ex, body }
}

function action(s: SignerCase, extra: Record<string, unknown> = {}) {
  return { type: 'verify-webhook', config: { provider: s.provider, secret: s.secret, ...s.extra, ...extra } }
}

describe('verify-webhook config', () => {
  test.each<{ desc: string; config: unknown; want: RegExp | undefined }>([
    { desc: 'github', config: { provider: 'github', secret: 's' }, want: undefined },
    { desc: 'provider required', config: { secret: 's' }, want: /^ERR_WARREN_2001: .*provider/ },
    { desc: 'unknown provider', config: { provider: 'myspace', secret: 's' }, want: /must be a supported provider/ },
    { desc: 'secret required', config: { provider: 'github' }, want: /secret/ },
    { desc: 'empty secret', config: { provider: 'github', secret: '' }, want: /must not be empty/ },
    { desc: 'unknown key', config: { provider: 'github', secret: 's', tolerance: 5 }, want: /tolerance/ },
    { desc: 'hmac without settings', config: { provider: 'hmac', secret: 's' }, want: /needs the `hmac` settings/ },
    { desc: 'hmac settings on github', config: { provider: 'github', secret: 's', hmac: { header: 'x-sig' } }, want: /only it takes them/ },
    { desc: 'hmac bad algorithm', config: { provider: 'hmac', secret: 's', hmac: { header: 'x-sig', algorithm: 'md5' } }, want: /algorithm/ },
    { desc: 'sendgrid secret that is no key', config: { provider: 'sendgrid', secret: 'not-a-key' }, want: /verification key/ },
    { desc: 'svix secret that is not base64', config: { provider: 'svix', secret: 'whsec_???' }, want: /base64/ },
    { desc: 'templated secret', config: { provider: 'github', secret: '${vars.secret}' }, want: undefined },
  ])('$desc', ({ config, want }) => {
    const got = loadError({ type: 'verify-webhook', config })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('verify-webhook providers', () => {
  test.each(SIGNERS.map((s) => ({ ...s, desc: s.provider })))('$desc: a signed delivery passes and reaches the upstream unchanged', async (s) => {
    const { ex, body } = delivery(s)
    const outcome = await run(action(s), ex)
    expect(ex.actions['verify_webhook']).toEqual({ verified: true, error: { code: '', message: '' } })
    expect(outcome.kind).toBe('continue')
    expect(await new Response(ex.body).text()).toBe(body)
  })

  test.each(SIGNERS.map((s) => ({ ...s, desc: s.provider })))('$desc: a tampered body gets 403', async (s) => {
    // Twilio signs the body only of form posts (JSON ones carry bodySHA256, tested below).
    const form = s.provider === 'twilio'
    const body = form ? 'Body=hello&From=x' : '{"event":"push","id":42}'
    const { ex } = delivery(s, { body: tamper(body), signedBody: body, ...(form ? { contentType: 'application/x-www-form-urlencoded' } : {}) })
    const res = responded(await run(action(s), ex))
    if (s.provider === 'gitlab') return expect(res).toBeUndefined() // GitLab sends a token, it does not sign the body
    expect(res?.status).toBe(403)
    expect(res?.headers.get('warren-error-code')).toBe('ERR_WARREN_2130')
    expect(ex.actions['verify_webhook']).toMatchObject({ verified: false, error: { code: 'ERR_WARREN_2130' } })
  })

  test.each(SIGNERS.map((s) => ({ ...s, desc: s.provider })))('$desc: the wrong secret gets 403', async (s) => {
    const { ex } = delivery(s)
    const secret = s.provider === 'sendgrid' ? SIGNERS.find((x) => x.provider === 'sendgrid')!.secret : s.secret
    const other = s.provider === 'sendgrid' ? undefined : s.provider === 'svix' || s.provider === 'clerk' || s.provider === 'standard_webhooks' ? 'whsec_' + Buffer.from('another key entirely!').toString('base64') : secret + 'x'
    if (!other) return // an asymmetric provider has no shared secret to get wrong; the tampered case covers it
    expect(responded(await run(action(s, { secret: other }), ex))?.status).toBe(403)
  })

  test.each(SIGNERS.filter((s) => s.timestamped).map((s) => ({ ...s, desc: s.provider })))('$desc: a stale timestamp gets 403', async (s) => {
    const { ex } = delivery(s, { now: Math.floor(Date.now() / 1000) - 600 })
    expect(responded(await run(action(s), ex))?.status).toBe(403)
    expect(String((ex.actions['verify_webhook'] as { error: { message: string } }).error.message)).toMatch(/timestamp is \d+s away/)
  })

  test('a missing signature header says which one', async () => {
    const ex = exchange(URL_, { method: 'POST', body: new Response('{}').body })
    await run({ type: 'verify-webhook', config: { provider: 'github', secret: 's' } }, ex)
    expect(ex.actions['verify_webhook']).toEqual({ verified: false, error: { code: 'ERR_WARREN_2130', message: 'the x-hub-signature-256 header is missing' } })
  })

  test('twilio form posts sign the sorted parameters; JSON posts carry bodySHA256', async () => {
    const twilio = SIGNERS.find((s) => s.provider === 'twilio')!
    const form = delivery(twilio, { body: 'To=%2B15551234&From=%2B1555999&Body=hi&Body=again', contentType: 'application/x-www-form-urlencoded' })
    expect((await run(action(twilio), form.ex)).kind).toBe('continue')
    const json = '{"a":1}'
    const ok = delivery(twilio, { body: json, url: `https://hooks.example.com/t?bodySHA256=${bodySha256(json)}` })
    expect((await run(action(twilio), ok.ex)).kind).toBe('continue')
    const bad = delivery(twilio, { body: '{"a":2}', url: `https://hooks.example.com/t?bodySHA256=${bodySha256(json)}` })
    expect(responded(await run(action(twilio), bad.ex))?.status).toBe(403)
  })

  test('enforce false lets a bad delivery through with the result set', async () => {
    const ex = exchange(URL_, { method: 'POST', body: new Response('{}').body, headersInit: { 'x-hub-signature-256': 'sha256=00' } })
    expect((await run({ type: 'verify-webhook', config: { provider: 'github', secret: 's', enforce: false } }, ex)).kind).toBe('continue')
    expect(ex.actions['verify_webhook']).toMatchObject({ verified: false })
  })

  test('a templated secret is rendered per request', async () => {
    const github = SIGNERS[0]!
    const { ex } = delivery(github)
    ex.vars['secret'] = github.secret
    expect((await run({ type: 'verify-webhook', config: { provider: 'github', secret: '${vars.secret}' } }, ex)).kind).toBe('continue')
  })

  test('a body over the limit is not verified but still reaches the upstream whole with enforce false', async () => {
    const big = 'x'.repeat(BUFFER_LIMIT + 10)
    const ex = exchange(URL_, { method: 'POST', body: new Response(big).body, headersInit: SIGNERS[0]!.sign({ url: URL_, body: big, contentType: '', now: 0 }) })
    expect((await run({ type: 'verify-webhook', config: { provider: 'github', secret: SIGNERS[0]!.secret, enforce: false } }, ex)).kind).toBe('continue')
    expect(ex.actions['verify_webhook']).toMatchObject({ verified: false, error: { message: `the body is larger than ${BUFFER_LIMIT} bytes` } })
    expect((await new Response(ex.body).text()).length).toBe(big.length)
  })
})
