import { describe, expect, test } from 'bun:test'
import { WarrenError } from '../../lib/errors.ts'
import { parseSshCommand, splitCommand, sshBindRequest } from './command.ts'

const options = { domain: 'warren.localhost', description: 'ssh -R test' }

function bind(text: string, bindAddr: string, bindPort: number) {
  return sshBindRequest(parseSshCommand(text), { bindAddr, bindPort }, options) as { Proto: string; Opts: Record<string, unknown>; Extra: Record<string, unknown>; ForwardsTo: string }
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return err instanceof WarrenError ? err.code : `not a WarrenError: ${String(err)}`
  }
  return undefined
}

describe('splitCommand()', () => {
  test.each([
    { desc: 'plain words', text: 'http --basic-auth u:p', words: ['http', '--basic-auth', 'u:p'] },
    { desc: 'quotes kept by the user for the remote side', text: `http "--request-header-add=x: a b" --description 'two words'`, words: ['http', '--request-header-add=x: a b', '--description', 'two words'] },
    { desc: 'ssh joined a quoted header value (ngrok documents this form)', text: 'http --request-header-add=host: localhost', words: ['http', '--request-header-add=host: localhost'] },
    { desc: 'the same with the value as its own word', text: 'http --request-header-add host: localhost --basic-auth a:b', words: ['http', '--request-header-add', 'host: localhost', '--basic-auth', 'a:b'] },
    { desc: 'backslash escapes and multi-line single quotes', text: "tcp --traffic-policy-file 'on_tcp_connect:\n  - actions: []' a\\ b", words: ['tcp', '--traffic-policy-file', 'on_tcp_connect:\n  - actions: []', 'a b'] },
  ])('$desc', ({ text, words }) => {
    expect(splitCommand(text)).toEqual([...words])
  })

  test('an unterminated quote is a command error', () => {
    expect(codeOf(() => splitCommand(`http --description 'oops`))).toBe('ERR_WARREN_4032')
  })
})

describe('parseSshCommand()', () => {
  test.each([
    { desc: 'no command', text: '', code: 'ERR_WARREN_4032' },
    { desc: 'unknown command', text: 'ftp', code: 'ERR_WARREN_4032' },
    { desc: 'unknown flag', text: 'http --frobnicate', code: 'ERR_WARREN_4032' },
    { desc: 'an agent-side flag', text: 'http --authtoken x', code: 'ERR_WARREN_4032' },
    { desc: 'https upstream', text: 'http https://localhost:8443', code: 'ERR_WARREN_4033' },
    { desc: 'file serving', text: 'http file:///var/log', code: 'ERR_WARREN_4033' },
    { desc: 'a directory path', text: 'http ./public', code: 'ERR_WARREN_4033' },
    { desc: 'an upstream port (it is the -R target)', text: 'http 8080', code: 'ERR_WARREN_4032' },
    { desc: 'agent TLS termination', text: 'tls --crt a.pem --key a.key', code: 'ERR_WARREN_4033' },
    { desc: 'host-header rewrite (the upstream is unknown)', text: 'http --host-header=rewrite', code: 'ERR_WARREN_4033' },
  ])('refuses $desc with $code', ({ text, code }) => {
    expect(codeOf(() => parseSshCommand(text))).toBe(code)
  })

  test('takes --verify-webhook with its secret', () => {
    expect(parseSshCommand('http --verify-webhook stripe --verify-webhook-secret whsec_1')).toEqual({ kind: 'http', values: { 'verify-webhook': 'stripe', 'verify-webhook-secret': 'whsec_1' } })
  })

  test('reads the kind and the flags', () => {
    expect(parseSshCommand('HTTP --basic-auth u:password1 --pooling-enabled')).toEqual({ kind: 'http', values: { 'basic-auth': ['u:password1'], 'pooling-enabled': true } })
  })
})

describe('sshBindRequest()', () => {
  test.each([
    { desc: 'port 0: https, random name', text: 'http', addr: 'localhost', port: 0, proto: 'https', url: '' },
    { desc: 'port 443: https', text: 'http', addr: '', port: 443, proto: 'https', url: '' },
    { desc: 'port 80: http', text: 'http', addr: 'localhost', port: 80, proto: 'http', url: '' },
    { desc: 'port 0 with --scheme http', text: 'http --scheme http', addr: 'localhost', port: 0, proto: 'http', url: '' },
    { desc: 'the bind address names the endpoint', text: 'http', addr: 'App.Example.com', port: 443, proto: 'https', url: 'https://app.example.com' },
    { desc: 'a wildcard bind address', text: 'http', addr: '*.example.com', port: 80, proto: 'http', url: 'http://*.example.com' },
    { desc: '--url without a scheme on port 0', text: 'http --url app.example.com', addr: 'localhost', port: 0, proto: 'https', url: 'https://app.example.com' },
    { desc: 'tcp on port 0: the registry picks a port', text: 'tcp', addr: 'localhost', port: 0, proto: 'tcp', url: '' },
    { desc: 'tcp on a given port', text: 'tcp', addr: 'localhost', port: 20001, proto: 'tcp', url: 'tcp://tcp.warren.localhost:20001' },
    { desc: 'tls named by the bind address', text: 'tls', addr: 'secure.example.com', port: 443, proto: 'tls', url: 'tls://secure.example.com' },
  ])('$desc', ({ text, addr, port, proto, url }) => {
    const request = bind(text, addr, port)
    expect(request.Proto).toBe(proto)
    expect(request.Opts.URL).toBe(url)
    expect(request.ForwardsTo).toBe('ssh -R test')
  })

  test.each([
    { desc: 'http on port 8080', text: 'http', addr: 'localhost', port: 8080 },
    { desc: 'both schemes', text: 'http --scheme http,https', addr: 'localhost', port: 0 },
    { desc: 'a scheme that contradicts the port', text: 'http --scheme https', addr: 'localhost', port: 80 },
    { desc: 'a name twice (bind address and --url)', text: 'http --url a.example.com', addr: 'b.example.com', port: 443 },
    { desc: 'tls on port 80', text: 'tls', addr: 'localhost', port: 80 },
    { desc: 'tcp with a port and --remote-addr', text: 'tcp --remote-addr tcp.example.com:20002', addr: 'localhost', port: 20001 },
  ])('refuses $desc (ERR_WARREN_4034)', ({ text, addr, port }) => {
    expect(codeOf(() => bind(text, addr, port))).toBe('ERR_WARREN_4034')
  })

  test('module flags become the Bind options the edge turns into policy; the policy flag carries text', () => {
    const policy = 'on_http_request:\n  - actions: [{type: deny}]'
    const request = bind(`http --basic-auth u:password1 --request-header-add=x-a: 1 --host-header=localhost:8080 --traffic-policy-file '${policy}' --pooling-enabled`, 'localhost', 80)
    expect(request.Opts.BasicAuth).toEqual({ credentials: [{ username: 'u', cleartext_password: 'password1' }] })
    expect(request.Opts.RequestHeaders).toEqual({ add: ['x-a: 1', 'host: localhost:8080'], remove: [] })
    expect(request.Opts.TrafficPolicy).toBe(policy)
    expect(request.Extra.PoolingEnabled).toBe(true)
  })

  test('--oidc and its options become the OIDC Bind option', () => {
    const request = bind('http --oidc https://idp.example.com --oidc-client-id edge --oidc-client-secret s3 --oidc-allow-domain example.com --oidc-scope groups', 'localhost', 443)
    expect(request.Opts.OIDC).toEqual({ IssuerURL: 'https://idp.example.com', ClientID: 'edge', ClientSecret: 's3', AllowEmails: [], AllowDomains: ['example.com'], Scopes: ['groups'] })
  })

  test('--oauth without the app refuses: no shared ngrok app on a self-hosted edge', () => {
    expect(codeOf(() => bind('http --oauth=google', 'localhost', 443))).toBe('ERR_WARREN_1001')
  })
})
