/**
 * verify-webhook through the compiled edge: one endpoint per provider, deliveries signed as each
 * provider signs them, tampered and stale ones refused with 403; the agent's --verify-webhook flag;
 * and no secret in the edge's log (run at debug level, where failures are logged).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { SIGNERS, tamper } from '../helpers/webhook-signers.ts'
import { edgeFlags, startAgent, type AgentProcess } from './framework/agent.ts'
import { curl } from './framework/curl.ts'
import { hostFetch, startEdge, type Edge } from './framework/process.ts'

/** The upstream echoes the body it got, so a test sees that the edge passed it on unchanged. */
const upstream = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req) {
    return Response.json({ body: await req.text(), signed: req.headers.get('x-hub-signature-256') })
  },
})
const origin = `http://127.0.0.1:${upstream.port}`
const hostOf = (provider: string) => `wh-${provider.replace(/_/g, '-')}.warren.localhost`

let edge: Edge
const agents: AgentProcess[] = []
beforeAll(async () => {
  const policies: Record<string, string> = {}
  for (const s of SIGNERS)
    policies[`${s.provider}.yml`] = JSON.stringify({
      url: `http://${hostOf(s.provider)}`,
      traffic_policy: {
        on_http_request: [
          { actions: [{ type: 'verify-webhook', config: { provider: s.provider, secret: s.secret, ...s.extra } }, { type: 'forward-external', config: { url: origin } }] },
        ],
      },
    })
  policies['dry.yml'] = JSON.stringify({
    url: 'http://wh-dry.warren.localhost',
    traffic_policy: {
      on_http_request: [
        { actions: [{ type: 'verify-webhook', config: { provider: 'github', secret: 'dry-run-secret-value', enforce: false } }] },
        { actions: [{ type: 'custom-response', config: { body: 'verified=${actions.ngrok.verify_webhook.verified} ${actions.ngrok.verify_webhook.error.message}' } }] },
      ],
    },
  })
  edge = await startEdge({
    policies,
    config: `log:\n  level: debug\naccounts:\n  - name: hooks\n    authtokens: [hooks-token]\n    domains: ["*.warren.localhost"]\n`,
  })
})
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()))
  await edge?.stop()
  upstream.stop(true)
})

async function deliver(provider: string, headers: Record<string, string>, body: string, path = '/hook') {
  return hostFetch(edge, hostOf(provider), path, { method: 'POST', headers, body })
}

describe('verify-webhook through the edge', () => {
  for (const s of SIGNERS) {
    test(`${s.provider}: signed passes, tampered${s.timestamped ? ' and stale' : ''} get 403`, async () => {
      const url = `http://${hostOf(s.provider)}/hook`
      const body = s.provider === 'twilio' ? 'From=%2B15551234&Body=hello' : '{"id":"evt_1","type":"ping"}'
      const contentType = s.provider === 'twilio' ? 'application/x-www-form-urlencoded' : 'application/json'
      const now = Math.floor(Date.now() / 1000)
      const signed = s.sign({ url, body, contentType, now })
      const ok = await deliver(s.provider, { ...signed, 'content-type': contentType }, body)
      expect(ok.status).toBe(200)
      expect(((await ok.json()) as { body: string }).body).toBe(body)

      if (s.provider !== 'gitlab') {
        const bad = await deliver(s.provider, { ...signed, 'content-type': contentType }, tamper(body))
        expect(bad.status).toBe(403)
        expect(bad.headers.get('warren-error-code')).toBe('ERR_WARREN_2130')
        await bad.body?.cancel()
      }
      if (s.timestamped) {
        const old = s.sign({ url, body, contentType, now: now - 3600 })
        const stale = await deliver(s.provider, { ...old, 'content-type': contentType }, body)
        expect(stale.status).toBe(403)
        await stale.body?.cancel()
      }
    })
  }

  test('curl: a GitHub delivery with a chunked body, and one without a signature', async () => {
    const s = SIGNERS.find((x) => x.provider === 'github')!
    const body = JSON.stringify({ zen: 'Keep it logically awesome.', pad: 'x'.repeat(20_000) })
    const headers = s.sign({ url: '', body, contentType: 'application/json', now: 0 })
    const common = ['-H', `Host: ${hostOf('github')}`, '-H', 'content-type: application/json', '-H', 'transfer-encoding: chunked', '--data-binary', body]
    const ok = await curl([...common, '-H', `x-hub-signature-256: ${headers['x-hub-signature-256']}`, `${edge.base}/hook`])
    expect(ok.status).toBe(200)
    expect(JSON.parse(ok.body).body).toBe(body)
    const missing = await curl([...common, `${edge.base}/hook`])
    expect(missing.status).toBe(403)
    expect(missing.headers['warren-error-code']).toBe('ERR_WARREN_2130')
  })

  test('enforce: false lets the delivery through and tells why in the result variables', async () => {
    const res = await hostFetch(edge, 'wh-dry.warren.localhost', '/', { method: 'POST', body: '{}', headers: { 'x-hub-signature-256': 'sha256=abcd' } })
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('verified=false the signature does not match')
  })
})

describe('the agent flag', () => {
  test('warren http --verify-webhook github --verify-webhook-secret S is enforced by the edge', async () => {
    const secret = 'agent-flag-webhook-secret'
    const a = startAgent(['http', String(upstream.port), '--url', 'http://agent-hook.warren.localhost', '--verify-webhook', 'github', '--verify-webhook-secret', secret, ...edgeFlags(edge, 'hooks-token')])
    agents.push(a)
    await a.forwarding()
    const body = '{"action":"opened"}'
    const github = SIGNERS.find((x) => x.provider === 'github')!
    const sig = 'sha256=' + new Bun.CryptoHasher('sha256', secret).update(body).digest('hex')
    const ok = await hostFetch(edge, 'agent-hook.warren.localhost', '/', { method: 'POST', body, headers: { 'x-hub-signature-256': sig } })
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as { body: string; signed: string }).signed).toBe(sig)
    // Signed with another secret (the policy endpoint's): refused.
    const other = github.sign({ url: '', body, contentType: '', now: 0 })
    const bad = await hostFetch(edge, 'agent-hook.warren.localhost', '/', { method: 'POST', body, headers: other })
    expect(bad.status).toBe(403)
    await bad.body?.cancel()
    expect(a.logs()).not.toContain(secret)
  })

  test('an unknown provider is refused at bind time with the reason', async () => {
    const a = startAgent(['http', String(upstream.port), '--url', 'http://agent-hook2.warren.localhost', '--verify-webhook', 'myspace', '--verify-webhook-secret', 'zzz-secret-zzz', ...edgeFlags(edge, 'hooks-token')])
    agents.push(a)
    const line = await a.waitForLog(/supported provider/, 15_000)
    expect(line).not.toContain('zzz-secret-zzz')
  })
})

test('no webhook secret appears in the edge log', async () => {
  await Bun.sleep(200)
  const logs = edge.logs()
  expect(logs).toContain('verify-webhook failed') // debug level: the failures above were logged
  for (const s of SIGNERS) expect(logs).not.toContain(s.secret)
  for (const secret of ['dry-run-secret-value', 'agent-flag-webhook-secret', 'zzz-secret-zzz']) expect(logs).not.toContain(secret)
})
