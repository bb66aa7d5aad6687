import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { opensslCert } from '../certs/testing.ts'
import { exchange } from '../../test/helpers/actions.ts'
import { WarrenError } from '../lib/errors.ts'
import { celContext } from '../policy/context.ts'
import { compilePolicy, validatePolicy } from '../policy/engine.ts'
import { policyFromOpts } from '../tunnel/opts.ts'
import type { AgentConfig } from './config.ts'
import { DEFAULT_SERVER_ADDR, endpointsFromFlags, normalizeArgs, resolveSettings, type EndpointFlagValues } from './flags.ts'
import { bindRequest } from './spec.ts'
import type { EndpointKind } from './upstream.ts'

const dir = mkdtempSync(join(tmpdir(), 'warren-agent-flags-'))
const policyPath = join(dir, 'policy.yml')
writeFileSync(policyPath, 'on_http_request:\n  - actions: [{type: deny, config: {status_code: 418}}]\n')
const pair = opensslCert(['DNS:s.example.com'])
const crtPath = join(dir, 'agent.crt')
const keyPath = join(dir, 'agent.key')
writeFileSync(crtPath, pair.cert)
writeFileSync(keyPath, pair.key)
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('endpointsFromFlags() translates', () => {
  test.each([
    { desc: 'a port: random https', kind: 'http', up: '8080', flags: {}, want: [{ name: 'http', scheme: 'https', url: undefined, upstream: { text: 'http://localhost:8080' } }] },
    { desc: '--url without scheme is https', kind: 'http', up: '8080', flags: { url: 'app.example.com' }, want: [{ scheme: 'https', url: 'https://app.example.com' }] },
    { desc: '--url http://', kind: 'http', up: '8080', flags: { url: 'http://app.example.com' }, want: [{ scheme: 'http', url: 'http://app.example.com' }] },
    { desc: 'legacy --domain', kind: 'http', up: '8080', flags: { domain: 'app.example.com' }, want: [{ url: 'https://app.example.com' }] },
    { desc: '--scheme http', kind: 'http', up: '8080', flags: { scheme: ['http'], domain: 'a.example.com' }, want: [{ scheme: 'http', url: 'http://a.example.com' }] },
    {
      desc: '--schemes http,https: one endpoint each',
      kind: 'http',
      up: '8080',
      flags: { schemes: ['http,https'], domain: 'a.example.com', name: 'web' },
      want: [
        { name: 'web-http', scheme: 'http', url: 'http://a.example.com' },
        { name: 'web-https', scheme: 'https', url: 'https://a.example.com' },
      ],
    },
    { desc: 'internal binding', kind: 'http', up: '80', flags: { url: 'https://api.internal', binding: 'internal' }, want: [{ bindings: ['internal'], url: 'https://api.internal' }] },
    { desc: 'pooling, name, description, metadata', kind: 'http', up: '80', flags: { 'pooling-enabled': true, name: 'n', description: 'd', metadata: 'm' }, want: [{ poolingEnabled: true, name: 'n', description: 'd', metadata: 'm' }] },
    { desc: 'tcp: edge picks the port', kind: 'tcp', up: '22', flags: {}, want: [{ kind: 'tcp', scheme: 'tcp', url: undefined, upstream: { text: 'localhost:22' } }] },
    { desc: 'tcp --url host:port', kind: 'tcp', up: '22', flags: { url: 'tcp.example.com:20001' }, want: [{ url: 'tcp://tcp.example.com:20001' }] },
    { desc: 'tcp legacy --remote-addr', kind: 'tcp', up: '22', flags: { 'remote-addr': 'tcp.example.com:20002' }, want: [{ url: 'tcp://tcp.example.com:20002' }] },
    { desc: 'tls --url', kind: 'tls', up: '443', flags: { url: 'tls://s.example.com' }, want: [{ kind: 'tls', scheme: 'tls', url: 'tls://s.example.com', upstream: { tls: false } }] },
    { desc: 'tls legacy --domain', kind: 'tls', up: '443', flags: { domain: 's.example.com' }, want: [{ url: 'tls://s.example.com' }] },
    { desc: '--upstream-proxy-protocol 2', kind: 'tcp', up: '22', flags: { 'upstream-proxy-protocol': '2' }, want: [{ proxyProtocol: 2 }] },
    { desc: 'legacy --proxy-proto 1', kind: 'tcp', up: '22', flags: { 'proxy-proto': '1' }, want: [{ proxyProtocol: 1 }] },
    { desc: '--upstream-tls-verify', kind: 'http', up: 'https://x.lan', flags: { 'upstream-tls-verify': true }, want: [{ upstream: { tls: true, verify: true } }] },
    { desc: '--upstream-protocol http1', kind: 'http', up: '80', flags: { 'upstream-protocol': 'http1' }, want: [{ kind: 'http' }] },
    { desc: '--upstream-protocol http2', kind: 'http', up: '50051', flags: { 'upstream-protocol': 'http2' }, want: [{ upstreamProtocol: 'http2', upstream: { text: 'http://localhost:50051' } }] },
    { desc: 'http2 to an https upstream', kind: 'http', up: 'https://grpc.lan:8443', flags: { 'upstream-protocol': 'HTTP2' }, want: [{ upstreamProtocol: 'http2', upstream: { tls: true } }] },
    { desc: 'http2 to a unix socket', kind: 'http', up: 'unix:/run/app.sock', flags: { 'upstream-protocol': 'http2' }, want: [{ upstreamProtocol: 'http2', upstream: { kind: 'unix' } }] },
    { desc: '--host-header rewrite: the upstream host:port', kind: 'http', up: '8080', flags: { 'host-header': 'rewrite' }, want: [{ modules: { RequestHeaders: { add: ['host: localhost:8080'], remove: [] } } }] },
    { desc: '--host-header rewrite: the default port is left out', kind: 'http', up: 'https://api.lan', flags: { 'host-header': 'rewrite' }, want: [{ modules: { RequestHeaders: { add: ['host: api.lan'] } } }] },
    { desc: '--host-header rewrite: IPv6 in brackets', kind: 'http', up: '[::1]:9000', flags: { 'host-header': 'rewrite' }, want: [{ modules: { RequestHeaders: { add: ['host: [::1]:9000'] } } }] },
    { desc: '--host-header VALUE', kind: 'http', up: '8080', flags: { 'host-header': 'example.com:81' }, want: [{ modules: { RequestHeaders: { add: ['host: example.com:81'] } } }] },
    {
      desc: '--host-header after --request-header-add',
      kind: 'http',
      up: '8080',
      flags: { 'host-header': 'rewrite', 'request-header-add': ['x-a: 1'], 'request-header-remove': ['cookie'] },
      want: [{ modules: { RequestHeaders: { add: ['x-a: 1', 'host: localhost:8080'], remove: ['cookie'] } } }],
    },
    { desc: 'tls --crt/--key: agent TLS termination', kind: 'tls', up: '8080', flags: { crt: crtPath, key: keyPath }, want: [{ kind: 'tls', tlsTermination: { cert: pair.cert, key: pair.key }, modules: {} }] },
  ] as { desc: string; kind: EndpointKind; up: string; flags: EndpointFlagValues; want: object[] }[])('$desc', ({ kind, up, flags, want }) => {
    const specs = endpointsFromFlags(kind, up, flags)
    expect(specs).toHaveLength(want.length)
    want.forEach((w, i) => expect(specs[i]).toMatchObject(w))
  })

  test('--traffic-policy-file is read and sent as JSON', () => {
    const [spec] = endpointsFromFlags('http', '80', { 'traffic-policy-file': policyPath })
    expect(JSON.parse(spec!.trafficPolicy!)).toEqual({ on_http_request: [{ actions: [{ type: 'deny', config: { status_code: 418 } }] }] })
  })

  test('legacy module flags become the Bind options ngrok agents send', () => {
    const [spec] = endpointsFromFlags('http', '80', {
      'basic-auth': ['alice:secret-pass', 'bob:p:with:colons'],
      'request-header-add': ['x-a: 1', 'x-b:two'],
      'request-header-remove': ['cookie'],
      'response-header-add': ['x-served-by: warren'],
      'cidr-allow': ['10.0.0.0/8'],
      'cidr-deny': ['10.1.0.0/16'],
    })
    expect(spec!.modules).toEqual({
      BasicAuth: {
        credentials: [
          { username: 'alice', cleartext_password: 'secret-pass' },
          { username: 'bob', cleartext_password: 'p:with:colons' },
        ],
      },
      RequestHeaders: { add: ['x-a: 1', 'x-b:two'], remove: ['cookie'] },
      ResponseHeaders: { add: ['x-served-by: warren'], remove: [] },
      IPRestriction: { allow_cidrs: ['10.0.0.0/8'], deny_cidrs: ['10.1.0.0/16'] },
    })
  })
})

describe('endpointsFromFlags() refuses', () => {
  test.each([
    { desc: 'no upstream', kind: 'http', up: undefined, flags: {}, what: 'an upstream is required' },
    { desc: 'basic auth without a colon', kind: 'http', up: '80', flags: { 'basic-auth': ['alice'] }, what: 'user:password' },
    { desc: 'basic auth with an empty password', kind: 'http', up: '80', flags: { 'basic-auth': ['alice:'] }, what: 'user:password' },
    { desc: 'a header without a colon', kind: 'http', up: '80', flags: { 'request-header-add': ['x-a'] }, what: 'name: value' },
    { desc: 'basic auth on tcp', kind: 'tcp', up: '22', flags: { 'basic-auth': ['a:b'] }, what: 'only applies to http' },
    { desc: '--remote-addr on http', kind: 'http', up: '80', flags: { 'remote-addr': 'x:1' }, what: 'only applies to tcp' },
    { desc: 'a tcp URL on http', kind: 'http', up: '80', flags: { url: 'tcp://x.example.com:1' }, what: 'http:// or https://' },
    { desc: 'an https URL on tcp', kind: 'tcp', up: '22', flags: { url: 'https://x.example.com' }, what: 'tcp://' },
    { desc: '--url and --domain', kind: 'http', up: '80', flags: { url: 'a.example.com', domain: 'b.example.com' }, what: 'only one of' },
    { desc: '--url https with --scheme http', kind: 'http', up: '80', flags: { url: 'https://a.example.com', scheme: ['http'] }, what: 'drop --scheme' },
    { desc: 'a bad scheme', kind: 'http', up: '80', flags: { scheme: ['ftp'] }, what: 'http or https' },
    { desc: 'a bad binding', kind: 'http', up: '80', flags: { binding: 'kubernetes' }, what: 'public or internal' },
    { desc: 'proxy protocol 3', kind: 'tcp', up: '22', flags: { 'upstream-proxy-protocol': '3' }, what: '1 or 2' },
    { desc: 'an unknown upstream protocol', kind: 'http', up: '80', flags: { 'upstream-protocol': 'http3' }, what: 'http1 or http2' },
    { desc: '--upstream-protocol on tcp', kind: 'tcp', up: '22', flags: { 'upstream-protocol': 'http2' }, what: 'only applies to http' },
    { desc: 'http2 to a file upstream', kind: 'http', up: 'file:///srv', flags: { 'upstream-protocol': 'http2' }, what: 'file://' },
    { desc: '--upstream-dotfiles to a port', kind: 'http', up: '8080', flags: { 'upstream-dotfiles': true }, what: 'only applies to file://' },
    { desc: '--upstream-dotfiles on tcp', kind: 'tcp', up: '22', flags: { 'upstream-dotfiles': true }, what: 'only applies to http' },
    { desc: '--host-header on tls', kind: 'tls', up: '443', flags: { 'host-header': 'rewrite' }, what: 'only applies to http' },
    { desc: '--host-header with a space', kind: 'http', up: '80', flags: { 'host-header': 'a b' }, what: 'host[:port]' },
    { desc: '--host-header empty', kind: 'http', up: '80', flags: { 'host-header': '' }, what: 'host[:port]' },
    { desc: '--crt without --key', kind: 'tls', up: '443', flags: { crt: crtPath }, what: 'go together' },
    { desc: '--crt on http', kind: 'http', up: '80', flags: { crt: crtPath, key: keyPath }, what: 'only applies to tls' },
    { desc: '--crt that cannot be read', kind: 'tls', up: '443', flags: { crt: join(dir, 'missing.crt'), key: keyPath }, what: 'missing.crt' },
    { desc: 'a key of another certificate', kind: 'tls', up: '443', flags: { crt: crtPath, key: policyPath }, what: 'not a usable certificate and key' },
    { desc: 'agent TLS termination with PROXY protocol', kind: 'tls', up: '443', flags: { crt: crtPath, key: keyPath, 'upstream-proxy-protocol': '1' }, what: 'cannot be combined' },
    { desc: '--verify-webhook without its secret', kind: 'http', up: '80', flags: { 'verify-webhook': 'github' }, what: 'go together' },
    { desc: '--verify-webhook-secret alone', kind: 'http', up: '80', flags: { 'verify-webhook-secret': 'x' }, what: 'go together' },
    { desc: '--verify-webhook on tcp', kind: 'tcp', up: '22', flags: { 'verify-webhook': 'github', 'verify-webhook-secret': 'x' }, what: 'only applies to http' },
    { desc: '--oauth without an app', kind: 'http', up: '80', flags: { oauth: 'google' }, what: 'no shared ngrok app' },
    { desc: '--oidc without a secret', kind: 'http', up: '80', flags: { oidc: 'https://idp.example.com', 'oidc-client-id': 'x' }, what: '--oidc-client-secret' },
    { desc: '--oauth-allow-email without --oauth', kind: 'http', up: '80', flags: { 'oauth-allow-email': ['a@example.com'] }, what: 'needs --oauth' },
    { desc: '--oauth and --oidc', kind: 'http', up: '80', flags: { oauth: 'github', 'oauth-client-id': 'i', 'oauth-client-secret': 's', oidc: 'https://idp.example.com', 'oidc-client-id': 'i', 'oidc-client-secret': 's' }, what: 'not both' },
    { desc: 'an allowed email with a quote', kind: 'http', up: '80', flags: { oidc: 'https://idp.example.com', 'oidc-client-id': 'i', 'oidc-client-secret': 's', 'oidc-allow-email': ["a'@x.com"] }, what: 'email address' },
    { desc: 'an allowed domain with a space', kind: 'http', up: '80', flags: { oauth: 'google', 'oauth-client-id': 'i', 'oauth-client-secret': 's', 'oauth-allow-domain': ['a b'] }, what: 'domain' },
    { desc: '--oidc on tcp', kind: 'tcp', up: '22', flags: { oidc: 'https://idp.example.com' }, what: 'only applies to http' },
    { desc: 'a public binding on an .internal URL', kind: 'http', up: '80', flags: { url: 'https://api.internal', binding: 'public' }, what: 'internal' },
  ] as { desc: string; kind: EndpointKind; up: string | undefined; flags: EndpointFlagValues; what: string }[])('$desc', ({ kind, up, flags, what }) => {
    let error: unknown
    try {
      endpointsFromFlags(kind, up, flags)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(WarrenError)
    expect((error as Error).message).toContain(what)
  })

  test('a bad basic-auth value is not echoed in the error', () => {
    try {
      endpointsFromFlags('http', '80', { 'basic-auth': ['supersecret'] })
    } catch (e) {
      expect((e as Error).message).not.toContain('supersecret')
    }
  })
})

describe('bindRequest()', () => {
  test('HTTP: the Opts of ngrok agents, which the edge turns into policy rules', () => {
    const [spec] = endpointsFromFlags('http', '8080', { url: 'https://a.example.com', 'basic-auth': ['u:password1'], 'request-header-add': ['x-a: 1'], name: 'web', metadata: 'm' })
    const req = bindRequest(spec!, '')
    expect(req).toMatchObject({ Id: '', Proto: 'https', ForwardsTo: 'http://localhost:8080', Extra: { Token: '', Name: 'web', Metadata: 'm', Bindings: [], PoolingEnabled: false } })
    expect((req.Opts as Record<string, unknown>).URL).toBe('https://a.example.com')
    const draft = policyFromOpts(req.Opts, 'https')
    expect(draft.on_http_request.map((r) => r.actions[0]!.type)).toEqual(['basic-auth', 'add-headers'])
    expect(draft.on_http_request[0]!.actions[0]!.config).toEqual({ credentials: ['u:password1'] })
  })

  test.each([
    { desc: 'oauth', flags: { oauth: 'github', 'oauth-client-id': 'gh', 'oauth-client-secret': 'gh-secret', 'oauth-scope': ['read:org'], 'oauth-allow-email': ['Alice@Example.com'], 'oauth-allow-domain': ['corp.example'] }, type: 'oauth', result: 'oauth', config: { provider: 'github', client_id: 'gh', client_secret: 'gh-secret', scopes: ['read:org'] } },
    { desc: 'oidc', flags: { oidc: 'https://idp.example.com', 'oidc-client-id': 'edge', 'oidc-client-secret': 's', 'oidc-allow-email': ['alice@example.com,bob@example.com'] }, type: 'openid-connect', result: 'openid_connect', config: { issuer_url: 'https://idp.example.com', client_id: 'edge', client_secret: 's' } },
  ] as { desc: string; flags: EndpointFlagValues; type: string; result: string; config: Record<string, unknown> }[])('--$desc becomes the action and an allow-list deny rule that compiles', ({ flags, type, result, config }) => {
    const [spec] = endpointsFromFlags('http', '8080', flags)
    const draft = policyFromOpts(bindRequest(spec!, '').Opts, 'https')
    expect(draft.on_http_request[0]!.actions).toEqual([{ type, config }])
    const allow = draft.on_http_request[1]!
    expect(allow.actions).toEqual([{ type: 'deny', config: { status_code: 403 } }])
    expect(allow.expressions![0]).toContain(`actions.ngrok.${result}.identity.email`)
    const compiled = compilePolicy(validatePolicy(draft), { scheme: 'https', cloud: false })
    const [rule] = compiled.on_http_request.slice(1)
    const denies = (email: string) => rule!.conditions[0]!(celContext({ ...exchange('https://a.example.com/'), actions: { [result]: { identity: { email } } } }))
    if (result === 'oauth') {
      expect(denies('alice@example.com')).toBe(false)
      expect(denies('carol@corp.example')).toBe(false)
      expect(denies('carol@notcorp.example')).toBe(true)
    } else {
      expect(denies('BOB@example.com')).toBe(false)
      expect(denies('mallory@example.com')).toBe(true)
    }
  })

  test('a sealed client secret is refused: the edge cannot unseal it', () => {
    expect(() => policyFromOpts({ OIDC: { IssuerURL: 'https://idp.example.com', ClientID: 'x', SealedClientSecret: 'AAAA' } }, 'https')).toThrow(/sealed/)
  })

  test.each(['http', 'tcp', 'tls'] as const)('%s: empty module options are not refused by the edge', (kind) => {
    const [spec] = endpointsFromFlags(kind, '8080', {})
    const req = bindRequest(spec!, '')
    const draft = policyFromOpts(req.Opts, spec!.scheme)
    expect([...draft.on_tcp_connect, ...draft.on_http_request, ...draft.on_http_response]).toEqual([])
  })

  test('--verify-webhook becomes a verify-webhook rule at the edge', () => {
    const [spec] = endpointsFromFlags('http', '8080', { 'verify-webhook': 'GitHub', 'verify-webhook-secret': 'wh-secret' })
    const req = bindRequest(spec!, '')
    expect((req.Opts as Record<string, unknown>).WebhookVerification).toEqual({ provider: 'github', secret: 'wh-secret', sealed_secret: '' })
    const draft = policyFromOpts(req.Opts, 'https')
    expect(draft.on_http_request[0]!.actions).toEqual([{ type: 'verify-webhook', config: { provider: 'github', secret: 'wh-secret' } }])
  })

  test('--host-header becomes an add-headers rule setting host at the edge', () => {
    const [spec] = endpointsFromFlags('http', '8080', { 'host-header': 'rewrite' })
    const draft = policyFromOpts(bindRequest(spec!, '').Opts, 'https')
    expect(draft.on_http_request[0]!.actions).toEqual([{ type: 'add-headers', config: { headers: { host: 'localhost:8080' } } }])
  })

  test('agent TLS termination binds a plain tls:// passthrough (the certificate stays in the agent)', () => {
    const [spec] = endpointsFromFlags('tls', '8080', { crt: crtPath, key: keyPath, url: 'tls://s.example.com' })
    const opts = bindRequest(spec!, '').Opts as Record<string, unknown>
    expect(opts.TLSTermination).toBeNull()
    expect(JSON.stringify(opts)).not.toContain('PRIVATE KEY')
  })

  test('tcp IP restrictions become an on_tcp_connect rule at the edge', () => {
    const [spec] = endpointsFromFlags('tcp', '22', { 'cidr-allow': ['10.0.0.0/8'] })
    expect(policyFromOpts(bindRequest(spec!, '').Opts, 'tcp').on_tcp_connect[0]!.actions[0]).toEqual({ type: 'restrict-ips', config: { allow: ['10.0.0.0/8'], deny: [] } })
  })

  test('a reconnect keeps the tunnel id and asks for the URL it had', () => {
    const [spec] = endpointsFromFlags('http', '8080', {})
    const req = bindRequest(spec!, 'tn_1', 'https://abc.example.com')
    expect(req.Id).toBe('tn_1')
    expect((req.Opts as Record<string, unknown>).URL).toBe('https://abc.example.com')
  })

  test('an explicit URL is never replaced by the remembered one', () => {
    const [spec] = endpointsFromFlags('http', '8080', { url: 'https://mine.example.com' })
    expect((bindRequest(spec!, 'tn_1', 'https://other.example.com').Opts as Record<string, unknown>).URL).toBe('https://mine.example.com')
  })

  test('the PROXY protocol version and the traffic policy travel in Opts', () => {
    const [spec] = endpointsFromFlags('tcp', '22', { 'upstream-proxy-protocol': '2' })
    expect(bindRequest({ ...spec!, trafficPolicy: '{}' }, '').Opts).toMatchObject({ ProxyProto: 2, TrafficPolicy: '{}' })
  })
})

describe('resolveSettings()', () => {
  const config = (agent: AgentConfig['agent']): AgentConfig => ({ sources: [], agent, agentBase: '/', endpoints: [] })

  test('defaults', () => {
    const s = resolveSettings({}, config({}), {}, false)
    expect(s.authtoken.reveal()).toBe('')
    expect(s).toMatchObject({ serverAddr: DEFAULT_SERVER_ADDR, serverCaPath: undefined, log: 'stdout', logFormat: 'logfmt', logLevel: 'info' })
    expect(resolveSettings({}, config({}), {}, true).logFormat).toBe('term')
  })

  test('flags win over the environment, which wins over the config', () => {
    const cfg = config({ authtoken: 'from-config', connect_url: 'config:1', connect_cas: '/config/ca.pem', log_format: 'json' })
    const env = { WARREN_AUTHTOKEN: 'from-env', WARREN_SERVER_ADDR: 'env:2', WARREN_SERVER_CA: '/env/ca.pem' }
    expect(resolveSettings({}, cfg, {}, false)).toMatchObject({ serverAddr: 'config:1', serverCaPath: '/config/ca.pem', logFormat: 'json' })
    expect(resolveSettings({}, cfg, {}, false).authtoken.reveal()).toBe('from-config')
    expect(resolveSettings({}, cfg, env, false)).toMatchObject({ serverAddr: 'env:2', serverCaPath: '/env/ca.pem' })
    expect(resolveSettings({}, cfg, env, false).authtoken.reveal()).toBe('from-env')
    const flagged = resolveSettings({ authtoken: 'flag', 'server-addr': 'flag:3', 'server-ca': '/flag/ca.pem', 'log-format': 'logfmt' }, cfg, env, false)
    expect(flagged).toMatchObject({ serverAddr: 'flag:3', serverCaPath: '/flag/ca.pem', logFormat: 'logfmt' })
    expect(flagged.authtoken.reveal()).toBe('flag')
  })

  test.each([
    { desc: 'default', values: {}, agent: {}, want: '127.0.0.1:4040' },
    { desc: 'flag', values: { 'web-addr': '0.0.0.0:4100' }, agent: { web_addr: '127.0.0.1:9' }, want: '0.0.0.0:4100' },
    { desc: 'config', values: {}, agent: { web_addr: '[::1]:4041' }, want: '[::1]:4041' },
    { desc: 'config false', values: {}, agent: { web_addr: false as const }, want: false },
    { desc: 'flag false', values: { 'web-addr': 'false' }, agent: {}, want: false },
    { desc: '--inspect=false', values: { 'no-inspect': true }, agent: { web_addr: '127.0.0.1:9' }, want: false },
  ])('inspector address: $desc', ({ values, agent, want }) => {
    expect(resolveSettings(values, config(agent), {}, false).webAddr).toBe(want)
  })

  test('a bad --web-addr is refused', () => {
    expect(() => resolveSettings({ 'web-addr': '4040' }, config({}), {}, false)).toThrow('--web-addr')
  })

  test('normalizeArgs() maps ngrok\'s --inspect=false', () => {
    expect(normalizeArgs(['80', '--inspect=false', '--inspect=true', '--url=x'])).toEqual(['80', '--no-inspect', '--inspect', '--url=x'])
  })

  test('an empty environment variable counts as unset', () => {
    expect(resolveSettings({}, config({ authtoken: 'from-config' }), { WARREN_AUTHTOKEN: '' }, false).authtoken.reveal()).toBe('from-config')
  })

  test('the authtoken never prints', () => {
    const s = resolveSettings({ authtoken: 'very-secret' }, config({}), {}, false)
    expect(JSON.stringify(s)).not.toContain('very-secret')
    expect(`${s.authtoken}`).toBe('HIDDEN')
  })

  test('connect_cas "host" means the system trust store', () => {
    expect(resolveSettings({}, config({ connect_cas: 'host' }), {}, false).serverCaPath).toBeUndefined()
    expect(resolveSettings({ 'server-ca': 'host' }, config({}), {}, false).serverCaPath).toBeUndefined()
  })

  test.each([
    { flags: { 'log-format': 'xml' }, what: '--log-format' },
    { flags: { 'log-level': 'loud' }, what: '--log-level' },
  ])('refuses $what', ({ flags, what }) => {
    expect(() => resolveSettings(flags, config({}), {}, false)).toThrow(what)
  })
})
