import { describe, expect, test } from 'bun:test'
import { WarrenError } from '../lib/errors.ts'
import { formatEndpointUrl, parseEndpointUrl, publicEndpointUrl, withoutPublicPort } from './url.ts'

describe('parseEndpointUrl() accepts', () => {
  test.each([
    { desc: 'https with host', raw: 'https://api.example.com', url: 'https://api.example.com', binding: 'public' },
    { desc: 'no scheme means https', raw: 'api.example.com', url: 'https://api.example.com', binding: 'public' },
    { desc: 'http', raw: 'http://a.warren.localhost', url: 'http://a.warren.localhost', binding: 'public' },
    { desc: 'upper case normalised', raw: 'HTTPS://API.Example.COM', url: 'https://api.example.com', binding: 'public' },
    { desc: 'trailing slash', raw: 'https://api.example.com/', url: 'https://api.example.com', binding: 'public' },
    { desc: 'explicit port', raw: 'https://api.example.com:8443', url: 'https://api.example.com:8443', binding: 'public' },
    { desc: 'wildcard', raw: 'https://*.example.com', url: 'https://*.example.com', binding: 'public' },
    { desc: 'tcp with port', raw: 'tcp://db.example.com:5432', url: 'tcp://db.example.com:5432', binding: 'public' },
    { desc: 'tls without port', raw: 'tls://secure.example.com', url: 'tls://secure.example.com', binding: 'public' },
    { desc: 'internal inferred', raw: 'https://example.internal', url: 'https://example.internal', binding: 'internal' },
    { desc: 'internal 3 subdomains', raw: 'https://example.foo.bar.internal', url: 'https://example.foo.bar.internal', binding: 'internal' },
    { desc: 'internal with port', raw: 'https://example.internal:12345', url: 'https://example.internal:12345', binding: 'internal' },
    { desc: 'internal tls', raw: 'tls://example.internal', url: 'tls://example.internal', binding: 'internal' },
    { desc: 'internal tls with port', raw: 'tls://example.internal:12345', url: 'tls://example.internal:12345', binding: 'internal' },
    { desc: 'internal tcp', raw: 'tcp://example.internal:12345', url: 'tcp://example.internal:12345', binding: 'internal' },
    { desc: 'internal 5 subdomains (the limit)', raw: 'http://a.b.c.d.e.internal', url: 'http://a.b.c.d.e.internal', binding: 'internal' },
    { desc: 'internal wildcard', raw: 'https://*.svc.internal', url: 'https://*.svc.internal', binding: 'internal' },
    { desc: 'port 1', raw: 'tcp://x.example.com:1', url: 'tcp://x.example.com:1', binding: 'public' },
    { desc: 'port 65535', raw: 'tcp://x.example.com:65535', url: 'tcp://x.example.com:65535', binding: 'public' },
    { desc: 'hyphens and digits', raw: 'http://my-app-2.example.com', url: 'http://my-app-2.example.com', binding: 'public' },
  ])('$desc: $raw', ({ raw, url, binding }) => {
    const parsed = parseEndpointUrl(raw)
    expect(formatEndpointUrl(parsed)).toBe(url)
    expect(parsed.binding).toBe(binding as 'public' | 'internal')
  })

  test('explicit internal binding on an .internal host', () => {
    expect(parseEndpointUrl('https://api.internal', { binding: 'internal' }).binding).toBe('internal')
  })
})

describe('parseEndpointUrl() rejects', () => {
  test.each([
    { desc: 'empty', raw: '', why: 'empty' },
    { desc: 'unknown scheme', raw: 'ftp://example.com', why: 'scheme "ftp"' },
    { desc: 'ws scheme', raw: 'ws://example.com', why: 'scheme "ws"' },
    { desc: 'path', raw: 'https://example.com/api', why: 'path' },
    { desc: 'query', raw: 'https://example.com?x=1', why: 'path, query' },
    { desc: 'user info', raw: 'https://user:pw@example.com', why: 'user information' },
    { desc: 'port 0', raw: 'https://example.com:0', why: 'outside 1-65535' },
    { desc: 'port 65536', raw: 'https://example.com:65536', why: 'outside 1-65535' },
    { desc: 'port not a number', raw: 'https://example.com:http', why: 'not a number' },
    { desc: 'tcp without port', raw: 'tcp://db.example.com', why: 'tcp endpoints must specify a port' },
    { desc: 'internal tcp without port', raw: 'tcp://db.internal', why: 'tcp endpoints must specify a port' },
    { desc: 'internal with 6 subdomains', raw: 'https://a.b.c.d.e.f.internal', why: 'at most 5 subdomains' },
    { desc: 'bare .internal', raw: 'https://internal', why: 'needs a hostname' },
    { desc: 'no hostname', raw: 'https://', why: 'hostname is required' },
    { desc: 'no hostname with port', raw: 'tcp://:5432', why: 'hostname is required' },
    { desc: 'wildcard in the middle', raw: 'https://a.*.example.com', why: 'wildcard' },
    { desc: 'partial wildcard label', raw: 'https://a*.example.com', why: 'wildcard' },
    { desc: 'bare wildcard', raw: 'https://*', why: 'needs a domain' },
    { desc: 'invalid label characters', raw: 'https://exa_mple.com', why: 'not a valid hostname label' },
    { desc: 'label starting with hyphen', raw: 'https://-a.example.com', why: 'not a valid hostname label' },
    { desc: 'label longer than 63', raw: `https://${'a'.repeat(64)}.example.com`, why: 'not a valid hostname label' },
    { desc: 'IPv4 address', raw: 'http://127.0.0.1', why: 'IP addresses' },
    { desc: 'IPv6 address', raw: 'http://[::1]:80', why: 'IP addresses' },
  ])('$desc: $raw', ({ raw, why }) => {
    let err: unknown
    try {
      parseEndpointUrl(raw)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(WarrenError)
    expect((err as WarrenError).code).toBe('ERR_WARREN_1004')
    expect((err as WarrenError).message).toContain(why)
  })

  test.each([
    { desc: 'internal binding on a public host', raw: 'https://api.example.com', binding: 'internal' as const, why: 'must use a hostname ending in ".internal"' },
    { desc: 'public binding on an .internal host', raw: 'https://api.internal', binding: 'public' as const, why: 'only have the internal binding' },
  ])('$desc', ({ raw, binding, why }) => {
    expect(() => parseEndpointUrl(raw, { binding })).toThrow(why)
  })
})

describe('publicEndpointUrl() names the port a client must use', () => {
  const listeners = { http: 8080, https: 8443, tls: 8443, tcp: 0 }
  const standard = { http: 80, https: 443, tls: 443, tcp: 0 }
  test.each([
    { desc: 'https on 8443', raw: 'https://a.warren.localhost', ports: listeners, shown: 'https://a.warren.localhost:8443' },
    { desc: 'http on 8080', raw: 'http://a.warren.localhost', ports: listeners, shown: 'http://a.warren.localhost:8080' },
    { desc: 'tls shares the https port', raw: 'tls://a.warren.localhost', ports: listeners, shown: 'tls://a.warren.localhost:8443' },
    { desc: 'public_ports 443 needs no port', raw: 'https://a.example.com', ports: standard, shown: 'https://a.example.com' },
    { desc: 'public_ports 80 needs no port', raw: 'http://a.example.com', ports: standard, shown: 'http://a.example.com' },
    { desc: 'an explicit port stays', raw: 'https://a.example.com:9443', ports: listeners, shown: 'https://a.example.com:9443' },
    { desc: 'tcp always has its port', raw: 'tcp://tcp.warren.localhost:20001', ports: listeners, shown: 'tcp://tcp.warren.localhost:20001' },
    { desc: 'internal endpoints are never reached on a port', raw: 'https://api.internal', ports: listeners, shown: 'https://api.internal' },
  ])('$desc: $raw → $shown', ({ raw, ports, shown }) => {
    expect(publicEndpointUrl(parseEndpointUrl(raw), ports)).toBe(shown)
    // What a client hands back (an agent re-binding its URL) is the same endpoint as the canonical URL.
    expect(formatEndpointUrl(withoutPublicPort(parseEndpointUrl(shown), ports))).toBe(formatEndpointUrl(parseEndpointUrl(raw)))
  })
})
