import ngrok from '@ngrok/ngrok'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { signInThroughEdge, startIdp, type Idp } from '../helpers/idp.ts'
import { edgeFlags, startAgent, type AgentProcess } from './framework/agent.ts'
import { freePort } from './framework/ports.ts'
import { hostFetch, startEdge, type Edge } from './framework/process.ts'
import { startUpstream } from './framework/upstreams.ts'

/*
 * `warren http … --oidc …` with the compiled agent, and the official @ngrok/ngrok SDK's oidc/oauth
 * options: the edge turns the Bind's OIDC/OAuth module into the openid-connect/oauth action plus an
 * allow-list rule.
 */

const SECRET = 'agent-oidc-secret-never-logged'
const upstream = startUpstream('agent-origin')
let edge: Edge
let idp: Idp
let agent: AgentProcess

const redirect = (name: string) => `http://${name}.warren.localhost:${edge.httpPort}/ngrok/callback`
const host = (name: string) => `${name}.warren.localhost:${edge.httpPort}`

beforeAll(async () => {
  const idpPort = await freePort()
  edge = await startEdge({
    config: `accounts:
  - name: alice
    authtokens: [alice-token]
    domains: ["*.warren.localhost"]
`,
  })
  idp = await startIdp(idpPort, [{ client_id: 'edge', client_secret: SECRET, redirect_uris: [redirect('flags'), redirect('sdk')] }])
  agent = startAgent([
    'http', String(upstream.port), '--url', 'http://flags.warren.localhost',
    '--oidc', idp.issuer, '--oidc-client-id', 'edge', '--oidc-client-secret', SECRET, '--oidc-allow-email', 'alice@example.test', '--oidc-allow-domain', 'corp.example.test',
    ...edgeFlags(edge, 'alice-token'),
  ])
  await agent.forwarding(1, 15_000)
})

afterAll(async () => {
  await agent?.stop()
  await edge?.stop()
  await idp?.stop()
  upstream.stop(true)
})

/** Signs `login` in at endpoint `name` (scripted browser); returns the final answer of the page first asked for. */
async function visitAs(name: string, login: string): Promise<Response> {
  const { session, back } = await signInThroughEdge(edge, host(name), login, '/echo')
  return hostFetch(edge, host(name), back, { headers: { cookie: session } })
}

describe('warren http --oidc (compiled agent)', () => {
  test('an allowed email reaches the upstream through the agent', async () => {
    const res = await visitAs('flags', 'alice')
    expect(res.status).toBe(200)
    expect(((await res.json()) as { path: string }).path).toBe('/echo')
    expect(upstream.seen.at(-1)?.headers.host).toBe(host('flags'))
  })

  test('an email outside the allow list and its domains gets 403', async () => {
    const res = await visitAs('flags', 'mallory')
    expect(res.status).toBe(403)
    expect(res.headers.get('warren-error-code')).toBe('ERR_WARREN_2101')
  })

  test('neither the agent nor the edge logs the client secret', () => {
    expect(agent.logs()).not.toContain(SECRET)
    expect(edge.logs()).not.toContain(SECRET)
  })
})

describe('the official @ngrok/ngrok SDK', () => {
  async function session() {
    return new ngrok.SessionBuilder().authtoken('alice-token').serverAddr(`127.0.0.1:${edge.agentPort}`).rootCas(edge.caPath).connect()
  }

  test('oidc options bind an endpoint that signs users in', async () => {
    const s = await session()
    try {
      await s.httpEndpoint().scheme('HTTP').domain('sdk.warren.localhost').oidc(idp.issuer, 'edge', SECRET, ['alice@example.test']).listenAndForward(`http://127.0.0.1:${upstream.port}`)
      expect((await visitAs('sdk', 'alice')).status).toBe(200)
      expect((await visitAs('sdk', 'bob')).status).toBe(403)
    } finally {
      for (const l of await ngrok.listeners()) await l.close()
      await s.close()
    }
  })

  test('oauth without a client id is refused at bind: no shared app on a self-hosted edge', async () => {
    const s = await session()
    try {
      const error = await s.httpEndpoint().scheme('HTTP').domain('nope.warren.localhost').oauth('google').listenAndForward(`http://127.0.0.1:${upstream.port}`).catch((e: unknown) => e as Error)
      expect(error).toBeInstanceOf(Error)
      expect((error as Error).message).toContain('ERR_WARREN_2160')
      expect((error as Error).message).toContain('no shared ngrok app')
    } finally {
      await s.close()
    }
  })
})
