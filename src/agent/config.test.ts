import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { opensslCert } from '../certs/testing.ts'
import { WarrenError } from '../lib/errors.ts'
import { defaultConfigPath, endpointFromEntry, loadAgentConfig, parseConfigText, selectEndpoints, type EndpointEntry } from './config.ts'

let dir: string
function file(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}
function failure(fn: () => unknown): WarrenError {
  try {
    fn()
  } catch (e) {
    if (e instanceof WarrenError) return e
    throw e
  }
  throw new Error('expected a WarrenError')
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'warren-agent-config-'))
  // A "billion laughs" policy: each line's anchor holds nine aliases of the line before.
  const levels = 'abcdefg'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(i ? `*${'abcdefg'[i - 1]}` : '"lol"').join(',')}]`)
  file('bomb.yml', levels.join('\n') + '\n')
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('defaultConfigPath()', () => {
  test.each([
    { desc: 'linux', platform: 'linux', env: {}, want: '/home/me/.config/warren/agent.yml' },
    { desc: 'linux with XDG_CONFIG_HOME', platform: 'linux', env: { XDG_CONFIG_HOME: '/xdg' }, want: '/xdg/warren/agent.yml' },
    { desc: 'macOS', platform: 'darwin', env: {}, want: '/home/me/Library/Application Support/warren/agent.yml' },
    { desc: 'windows', platform: 'win32', env: { LOCALAPPDATA: '/appdata' }, want: '/appdata/warren/agent.yml' },
  ])('$desc', ({ platform, env, want }) => {
    expect(defaultConfigPath(env, platform, '/home/me')).toBe(want)
  })
})

describe('parseConfigText()', () => {
  test('reads the ngrok v3 shape', () => {
    const config = parseConfigText(
      `version: 3
agent:
  authtoken: tok
  connect_url: edge.example.com:4443
  connect_cas: ./ca.pem
  web_addr: false
  log: stdout
  log_format: json
  log_level: debug
  heartbeat_interval: 5s
endpoints:
  - name: web
    url: https://web.example.com
    bindings: [public]
    pooling_enabled: true
    traffic_policy:
      on_http_request:
        - actions: [{type: deny}]
    upstream:
      url: 8080
      protocol: http1
      proxy_protocol: 2
`,
      'agent.yml',
    )
    expect(config.agent?.authtoken).toBe('tok')
    expect(config.endpoints?.[0]?.upstream.url).toBe(8080)
  })

  test.each([
    { desc: 'version missing', text: 'agent: {}\n', where: 'agent.yml:1:1', what: 'version' },
    { desc: 'version 2', text: 'version: 2\n', where: 'agent.yml:1:10', what: 'must be 3' },
    { desc: 'unknown agent key', text: 'version: 3\nagent:\n  server: x\n', where: 'agent.yml:3:11', what: 'unknown key "server"' },
    { desc: 'unknown endpoint key', text: 'version: 3\nendpoints:\n  - name: a\n    upstream: {url: 80}\n    proto: http\n', where: 'agent.yml:5:12', what: 'unknown key "proto"' },
    { desc: 'upstream missing', text: 'version: 3\nendpoints:\n  - name: a\n', where: 'agent.yml:3:5', what: 'upstream' },
    { desc: 'bad binding', text: 'version: 3\nendpoints:\n  - name: a\n    bindings: [kubernetes]\n    upstream: {url: 80}\n', where: 'agent.yml:4:16', what: 'bindings' },
    { desc: 'bad log format', text: 'version: 3\nagent:\n  log_format: xml\n', where: 'agent.yml:3:15', what: 'log_format' },
    { desc: 'bad duration', text: 'version: 3\nagent:\n  heartbeat_interval: soon\n', where: 'agent.yml:3:23', what: 'duration' },
    { desc: 'duplicate name', text: 'version: 3\nendpoints:\n  - name: a\n    upstream: {url: 80}\n  - name: a\n    upstream: {url: 81}\n', where: 'agent.yml:5:11', what: 'used twice' },
    { desc: 'YAML syntax: the unclosed [ on its own line', text: 'version: 3\nagent: [\n', where: 'agent.yml:2:9', what: '' },
  ])('$desc → $where', ({ text, where, what }) => {
    const err = failure(() => parseConfigText(text, 'agent.yml'))
    expect(err.code).toBe('ERR_WARREN_1001')
    expect(err.message).toStartWith(where)
    expect(err.message).toContain(what)
  })
})

describe('loadAgentConfig()', () => {
  test('merges files: later agent keys win, endpoints merge by name, order kept', () => {
    const a = file(
      'a.yml',
      `version: 3
agent: {authtoken: one, connect_url: "a:1", connect_cas: ca.pem}
endpoints:
  - {name: web, url: "https://web.example.com", upstream: {url: 8080}}
  - {name: db, url: "tcp://db.example.com:5432", upstream: {url: 5432}}
`,
    )
    const b = file(
      'b.yml',
      `version: "3"
agent: {authtoken: two}
endpoints:
  - {name: web, url: "https://web2.example.com", upstream: {url: 9090}}
  - {name: ssh, url: "tcp://", upstream: {url: 22}}
`,
    )
    const config = loadAgentConfig([a, b])
    expect(config.sources).toEqual([a, b])
    expect(config.agent).toMatchObject({ authtoken: 'two', connect_url: 'a:1', connect_cas: join(dir, 'ca.pem') })
    expect(config.endpoints.map((e) => [e.entry.name, e.source])).toEqual([
      ['web', b],
      ['db', a],
      ['ssh', b],
    ])
    expect(config.endpoints[0]!.entry.url).toBe('https://web2.example.com')
  })

  test('a missing default file is an empty config; a missing named file is an error', () => {
    expect(loadAgentConfig([], { defaultPath: join(dir, 'nope.yml') })).toMatchObject({ sources: [], endpoints: [] })
    expect(failure(() => loadAgentConfig([join(dir, 'nope.yml')])).message).toContain('Cannot read config')
  })

  test('connect_cas "host" stays a keyword', () => {
    const config = loadAgentConfig([file('host.yml', 'version: 3\nagent: {connect_cas: host}\n')])
    expect(config.agent.connect_cas).toBe('host')
  })
})

describe('endpointFromEntry()', () => {
  const source = () => join(dir, 'agent.yml')
  test.each([
    { desc: 'https URL', entry: { name: 'w', url: 'https://w.example.com', upstream: { url: 8080 } }, want: { kind: 'http', scheme: 'https', url: 'https://w.example.com' } },
    { desc: 'no URL: random https', entry: { name: 'w', upstream: { url: '8080' } }, want: { kind: 'http', scheme: 'https', url: undefined } },
    { desc: 'http URL', entry: { name: 'w', url: 'http://w.example.com', upstream: { url: 8080 } }, want: { kind: 'http', scheme: 'http' } },
    { desc: 'bare tcp://', entry: { name: 't', url: 'tcp://', upstream: { url: 22 } }, want: { kind: 'tcp', scheme: 'tcp', url: undefined } },
    { desc: 'tcp with port', entry: { name: 't', url: 'tcp://x.example.com:20001', upstream: { url: 22 } }, want: { kind: 'tcp', url: 'tcp://x.example.com:20001' } },
    { desc: 'tls', entry: { name: 's', url: 'tls://s.example.com', upstream: { url: 'localhost:8443' } }, want: { kind: 'tls', scheme: 'tls', url: 'tls://s.example.com' } },
    { desc: 'internal binding', entry: { name: 'i', url: 'https://api.internal', bindings: ['internal' as const], upstream: { url: 80 } }, want: { bindings: ['internal'] } },
    { desc: 'pooling', entry: { name: 'p', pooling_enabled: true, upstream: { url: 80 } }, want: { poolingEnabled: true } },
    { desc: 'proxy protocol "2"', entry: { name: 'p', upstream: { url: 80, proxy_protocol: '2' as const } }, want: { proxyProtocol: 2 } },
    { desc: 'proxy protocol 1', entry: { name: 'p', upstream: { url: 80, proxy_protocol: 1 as const } }, want: { proxyProtocol: 1 } },
    { desc: 'inline policy as JSON', entry: { name: 'p', traffic_policy: { on_http_request: [] }, upstream: { url: 80 } }, want: { trafficPolicy: '{"on_http_request":[]}' } },
    { desc: 'file upstream with dotfiles', entry: { name: 'f', upstream: { url: 'file:///srv', dotfiles: true } }, want: { upstream: { kind: 'file', root: '/srv', dotfiles: true } } },
    { desc: 'upstream tls_verify', entry: { name: 'v', upstream: { url: 'https://x.lan', tls_verify: true } }, want: { upstream: { kind: 'net', tls: true, verify: true } } },
    { desc: 'http2 upstream', entry: { name: 'h', upstream: { url: 50051, protocol: 'http2' as const } }, want: { upstreamProtocol: 'http2', upstream: { text: 'http://localhost:50051' } } },
    { desc: 'http1 upstream', entry: { name: 'h', upstream: { url: 80, protocol: 'http1' as const } }, want: { kind: 'http' } },
  ] as { desc: string; entry: EndpointEntry; want: object }[])('$desc', ({ entry, want }) => {
    expect(endpointFromEntry({ entry, source: source() })).toMatchObject(want)
  })

  test('traffic_policy_file is read relative to the config file, YAML → JSON', () => {
    file('policy.yml', 'on_http_request:\n  - actions:\n      - type: deny\n')
    const spec = endpointFromEntry({ entry: { name: 'p', traffic_policy_file: 'policy.yml', upstream: { url: 80 } }, source: source() })
    expect(JSON.parse(spec.trafficPolicy!)).toEqual({ on_http_request: [{ actions: [{ type: 'deny' }] }] })
  })

  test('agent_tls_termination reads the certificate and key relative to the config file', () => {
    const pair = opensslCert(['DNS:s.example.com'])
    file('agent.crt', pair.cert)
    file('agent.key', pair.key)
    const entry = { name: 's', url: 'tls://s.example.com', upstream: { url: 8080 }, agent_tls_termination: { server_certificate: 'agent.crt', server_private_key: 'agent.key' } }
    const spec = endpointFromEntry({ entry, source: source() })
    expect(spec.tlsTermination).toEqual({ cert: pair.cert, key: pair.key })
    // The bind stays a plain tls:// passthrough at the edge: the certificate never leaves the agent.
    expect(spec.modules).toEqual({})
  })

  test('agent_tls_termination accepts the PEM text itself', () => {
    const pair = opensslCert(['DNS:s.example.com'])
    const entry = { name: 's', url: 'tls://', upstream: { url: 8080 }, agent_tls_termination: { server_certificate: pair.cert, server_private_key: pair.key } }
    expect(endpointFromEntry({ entry, source: source() }).tlsTermination?.cert).toBe(pair.cert)
  })

  test.each([
    { desc: 'http2 on a tcp endpoint', entry: { name: 'x', url: 'tcp://', upstream: { url: 80, protocol: 'http2' as const } }, code: 'ERR_WARREN_1001', what: 'only applies to http' },
    { desc: 'http2 to a file upstream', entry: { name: 'x', upstream: { url: 'file:///srv', protocol: 'http2' as const } }, code: 'ERR_WARREN_1001', what: 'file://' },
    { desc: 'agent TLS termination on https', entry: { name: 'x', agent_tls_termination: { server_certificate: 'a', server_private_key: 'b' }, upstream: { url: 80 } }, code: 'ERR_WARREN_1001', what: 'only applies to tls://' },
    { desc: 'agent TLS termination with missing files', entry: { name: 'x', url: 'tls://', agent_tls_termination: { server_certificate: 'none.crt', server_private_key: 'none.key' }, upstream: { url: 80 } }, code: 'ERR_WARREN_1001', what: 'none.crt' },
    { desc: 'agent mutual TLS', entry: { name: 'x', url: 'tls://', agent_tls_termination: { server_certificate: 'a', server_private_key: 'b', mutual_tls_certificate_authorities: ['ca.pem'] }, upstream: { url: 80 } }, code: 'ERR_WARREN_1001', what: 'mutual_tls_certificate_authorities' },
    { desc: 'agent TLS termination with PROXY protocol', entry: { name: 'x', url: 'tls://', agent_tls_termination: { server_certificate: 'a', server_private_key: 'b' }, upstream: { url: 80, proxy_protocol: 1 as const } }, code: 'ERR_WARREN_1001', what: 'proxy_protocol' },
    { desc: 'both policies', entry: { name: 'x', traffic_policy: {}, traffic_policy_file: 'p.yml', upstream: { url: 80 } }, code: 'ERR_WARREN_1001', what: 'not both' },
    { desc: 'policy file with an alias bomb', entry: { name: 'x', traffic_policy_file: 'bomb.yml', upstream: { url: 80 } }, code: 'ERR_WARREN_1007', what: 'bomb.yml:7:8: YAML aliases expand too far: *f' },
    { desc: 'missing policy file', entry: { name: 'x', traffic_policy_file: 'missing.yml', upstream: { url: 80 } }, code: 'ERR_WARREN_1006', what: 'missing.yml' },
    { desc: 'bad URL', entry: { name: 'x', url: 'ftp://a.example.com', upstream: { url: 80 } }, code: 'ERR_WARREN_1004', what: 'scheme "ftp"' },
    { desc: 'bad upstream', entry: { name: 'x', upstream: { url: 'http://x/path' } }, code: 'ERR_WARREN_1001', what: 'path' },
    { desc: 'file upstream on tcp', entry: { name: 'x', url: 'tcp://', upstream: { url: 'file:///srv' } }, code: 'ERR_WARREN_1001', what: 'only work on http' },
    { desc: 'dotfiles for a port', entry: { name: 'x', upstream: { url: 8080, dotfiles: true } }, code: 'ERR_WARREN_1001', what: 'only applies to file://' },
  ] as { desc: string; entry: EndpointEntry; code: string; what: string }[])('$desc is refused', ({ entry, code, what }) => {
    const err = failure(() => endpointFromEntry({ entry, source: source() }))
    expect(err.code as string).toBe(code)
    expect(err.message).toContain(what)
    expect(err.message).toContain(`endpoint "x"`)
  })
})

describe('selectEndpoints()', () => {
  const config = () =>
    loadAgentConfig([
      file('sel.yml', 'version: 3\nendpoints:\n  - {name: a, upstream: {url: 80}}\n  - {name: b, upstream: {url: 81}}\n  - {name: c, upstream: {url: 82}}\n'),
    ])
  test('names pick in the order given', () => {
    expect(selectEndpoints(config(), ['c', 'a'], false).map((e) => e.name)).toEqual(['c', 'a'])
  })
  test('--all picks every endpoint', () => {
    expect(selectEndpoints(config(), [], true).map((e) => e.name)).toEqual(['a', 'b', 'c'])
  })
  test('an unknown name lists the known ones', () => {
    expect(failure(() => selectEndpoints(config(), ['zzz'], false)).message).toContain('known: a, b, c')
  })
  test('nothing named and no --all is an error', () => {
    expect(failure(() => selectEndpoints(config(), [], false)).message).toContain('--all')
  })
})
