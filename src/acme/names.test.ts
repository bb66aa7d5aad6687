import { describe, expect, test } from 'bun:test'
import { formatEndpointUrl, parseEndpointUrl } from '../config/url.ts'
import type { Endpoint } from '../endpoints/endpoint.ts'
import { EndpointTable } from '../endpoints/table.ts'
import { EMPTY_POLICY } from '../policy/engine.ts'
import { isClaimed, qualifiesForPublicCert, wantedNames, type ClaimSources } from './names.ts'

function ep(url: string, options: { port?: number; kind?: 'cloud' | 'agent' } = {}): Endpoint {
  const parsed = parseEndpointUrl(url)
  const port = parsed.port ?? options.port ?? 443
  const urlText = formatEndpointUrl(parsed)
  return {
    id: url,
    kind: options.kind ?? 'cloud',
    url: parsed,
    urlText,
    port,
    account: 'default',
    poolingEnabled: false,
    source: 'a.yml',
    position: { line: 1, col: 1 },
    description: undefined,
    metadata: undefined,
    policy: EMPTY_POLICY,
    info: { id: url, url: urlText, scheme: parsed.scheme, host: parsed.host, port, binding: parsed.binding },
  }
}

function sources(urls: string[], extra: Partial<ClaimSources> = {}): ClaimSources {
  return { table: EndpointTable.build(1, urls.map((u) => ep(u))).table, httpsPort: 443, accountDomains: [], own: [], ...extra }
}

describe('qualifiesForPublicCert()', () => {
  test.each([
    { name: 'api.example.com', want: true },
    { name: '*.example.com', want: true },
    { name: 'a.b.c.example.co.uk', want: true },
    { name: 'web.acme.test', want: true },
    { name: 'localhost', want: false },
    { name: 'app.warren.localhost', want: false },
    { name: 'printer.local', want: false },
    { name: 'svc.internal', want: false },
    { name: 'nas.home.arpa', want: false },
    { name: 'x.invalid', want: false },
    { name: 'intranet', want: false },
    { name: '127.0.0.1', want: false },
    { name: '::1', want: false },
    { name: '*.*.example.com', want: false },
    { name: 'a..b', want: false },
    { name: '-bad.example.com', want: false },
    { name: '*.com', want: false },
  ])('$name → $want', ({ name, want }) => {
    expect(qualifiesForPublicCert(name)).toBe(want)
  })
})

describe('isClaimed()', () => {
  const src = sources(
    ['https://api.example.com', 'https://*.apps.example.com', 'tls://db.example.com', 'http://plain.example.com', 'https://odd.example.com:9443', 'https://svc.internal'],
    { accountDomains: ['owned.example.org', '*.tenant.example.net'], own: ['agent.example.com'] },
  )
  test.each([
    { desc: 'exact https endpoint', name: 'api.example.com', want: true },
    { desc: 'a name under a wildcard https endpoint', name: 'x.apps.example.com', want: true },
    { desc: 'tls endpoint (asks only when it terminates)', name: 'db.example.com', want: true },
    { desc: 'an account domain', name: 'owned.example.org', want: true },
    { desc: 'under an account wildcard', name: 'a.tenant.example.net', want: true },
    { desc: 'the agent port name', name: 'agent.example.com', want: true },
    { desc: 'http-only endpoint', name: 'plain.example.com', want: false },
    { desc: 'https endpoint on another port', name: 'odd.example.com', want: false },
    { desc: 'unclaimed name', name: 'evil.example.com', want: false },
    { desc: 'the wildcard apex', name: 'apps.example.com', want: false },
    { desc: 'a suffix trick', name: 'x.apps.example.com.evil.org', want: false },
    { desc: 'internal endpoint', name: 'svc.internal', want: false },
    { desc: 'a wildcard as SNI', name: '*.apps.example.com', want: false },
  ])('$desc: $name → $want', ({ name, want }) => {
    expect(isClaimed(src, name)).toBe(want)
  })
})

describe('wantedNames()', () => {
  const src = sources(['https://api.example.com', 'https://x.apps.example.com', 'https://*.apps.example.com', 'tls://db.example.com', 'https://app.warren.localhost', 'http://plain.example.com'], {
    accountDomains: ['Owned.Example.org', '*.tenant.example.net'],
    own: ['agent.example.com', 'localhost'],
  })

  test('without wildcards: exact https endpoints, exact account domains, the agent name', () => {
    expect(wantedNames(src, { wildcards: false })).toEqual(['agent.example.com', 'api.example.com', 'owned.example.org', 'x.apps.example.com'])
  })

  test('with wildcards (dns-01): wildcard endpoints and account domains too; covered exact names left out', () => {
    expect(wantedNames(src, { wildcards: true })).toEqual(['*.apps.example.com', '*.tenant.example.net', 'agent.example.com', 'api.example.com', 'owned.example.org'])
  })

  test('live agent endpoints count like cloud ones', () => {
    const table = EndpointTable.build(2, [ep('https://abc123.example.com', { kind: 'agent' })]).table
    expect(wantedNames({ table, httpsPort: 443, accountDomains: [], own: [] }, { wildcards: false })).toEqual(['abc123.example.com'])
  })
})
