import { describe, expect, test } from 'bun:test'
import { WarrenError } from '../lib/errors.ts'
import { parseUpstream, type EndpointKind } from './upstream.ts'

describe('parseUpstream() accepts', () => {
  test.each([
    { desc: 'a bare port', raw: '8080', endpoint: 'http', want: { kind: 'net', host: 'localhost', port: 8080, tls: false, text: 'http://localhost:8080' } },
    { desc: 'a number', raw: 3000, endpoint: 'http', want: { kind: 'net', host: 'localhost', port: 3000, tls: false, text: 'http://localhost:3000' } },
    { desc: 'port 443 implies https', raw: '443', endpoint: 'http', want: { kind: 'net', host: 'localhost', port: 443, tls: true, text: 'https://localhost:443' } },
    { desc: 'host:443 implies https', raw: 'api.lan:443', endpoint: 'http', want: { kind: 'net', host: 'api.lan', port: 443, tls: true } },
    { desc: 'host:port', raw: '10.0.0.5:9000', endpoint: 'http', want: { kind: 'net', host: '10.0.0.5', port: 9000, tls: false, text: 'http://10.0.0.5:9000' } },
    { desc: 'a host alone is port 80', raw: 'intranet', endpoint: 'http', want: { kind: 'net', host: 'intranet', port: 80, tls: false } },
    { desc: 'http:// default port', raw: 'http://example.lan', endpoint: 'http', want: { kind: 'net', host: 'example.lan', port: 80, tls: false } },
    { desc: 'https:// default port', raw: 'https://example.lan', endpoint: 'http', want: { kind: 'net', host: 'example.lan', port: 443, tls: true } },
    { desc: 'https:// with port and slash', raw: 'https://localhost:8443/', endpoint: 'http', want: { kind: 'net', port: 8443, tls: true, text: 'https://localhost:8443' } },
    { desc: 'http:// on port 443 stays plain', raw: 'http://localhost:443', endpoint: 'http', want: { tls: false } },
    { desc: 'IPv6 in brackets', raw: '[::1]:8080', endpoint: 'http', want: { kind: 'net', host: '::1', port: 8080, text: 'http://[::1]:8080' } },
    { desc: 'upper-case host is lowered', raw: 'http://LocalHost:81', endpoint: 'http', want: { host: 'localhost' } },
    { desc: 'tcp port', raw: '22', endpoint: 'tcp', want: { kind: 'net', host: 'localhost', port: 22, tls: false, text: 'localhost:22' } },
    { desc: 'tcp: port 443 is not https', raw: '443', endpoint: 'tcp', want: { tls: false } },
    { desc: 'tcp:// host:port', raw: 'tcp://db:5432', endpoint: 'tcp', want: { host: 'db', port: 5432, tls: false } },
    { desc: 'tls:// upstream of a tcp endpoint opens TLS', raw: 'tls://db:5432', endpoint: 'tcp', want: { tls: true, text: 'tls://db:5432' } },
    { desc: 'tls endpoints pass TLS through', raw: 'https://localhost:8443', endpoint: 'tls', want: { tls: false, port: 8443, text: 'localhost:8443' } },
    { desc: 'file:// absolute', raw: 'file:///srv/www', endpoint: 'http', want: { kind: 'file', root: '/srv/www', text: 'file:///srv/www' } },
    { desc: 'file:// trailing slash dropped', raw: 'file:///srv/www/', endpoint: 'http', want: { kind: 'file', root: '/srv/www' } },
    { desc: 'file:// root', raw: 'file:///', endpoint: 'http', want: { kind: 'file', root: '/' } },
    { desc: 'file:// percent-encoded', raw: 'file:///srv/my%20site', endpoint: 'http', want: { kind: 'file', root: '/srv/my site' } },
    { desc: 'file://localhost/', raw: 'file://localhost/srv', endpoint: 'http', want: { kind: 'file', root: '/srv' } },
    { desc: 'Windows path with slash', raw: 'file:///C:/Users/me/site', endpoint: 'http', want: { kind: 'file', root: 'C:/Users/me/site', text: 'file:///C:/Users/me/site' } },
    { desc: 'Windows path with backslashes', raw: 'file://C:\\www', endpoint: 'http', want: { kind: 'file', root: 'C:/www' } },
    { desc: 'unix socket', raw: 'unix:/run/app.sock', endpoint: 'http', want: { kind: 'unix', path: '/run/app.sock', text: 'unix:/run/app.sock' } },
    { desc: 'unix:// socket', raw: 'unix:///run/app.sock', endpoint: 'tcp', want: { kind: 'unix', path: '/run/app.sock' } },
  ] as { desc: string; raw: string | number; endpoint: EndpointKind; want: Record<string, unknown> }[])('$desc: $raw', ({ raw, endpoint, want }) => {
    expect(parseUpstream(raw, { endpoint })).toMatchObject(want)
  })

  test('verification is off unless asked', () => {
    expect(parseUpstream('https://x.lan', { endpoint: 'http' })).toMatchObject({ verify: false })
    expect(parseUpstream('https://x.lan', { endpoint: 'http', verifyTls: true })).toMatchObject({ verify: true })
  })

  test('dotfiles are hidden unless asked', () => {
    expect(parseUpstream('file:///srv', { endpoint: 'http' })).toMatchObject({ kind: 'file', dotfiles: false })
    expect(parseUpstream('file:///srv', { endpoint: 'http', dotfiles: true })).toMatchObject({ kind: 'file', dotfiles: true })
  })

  test('a relative unix socket path is made absolute', () => {
    const up = parseUpstream('unix:app.sock', { endpoint: 'http' })
    expect(up.kind === 'unix' && up.path.startsWith('/') && up.path.endsWith('/app.sock')).toBe(true)
  })
})

describe('parseUpstream() rejects', () => {
  test.each([
    { desc: 'empty', raw: '', endpoint: 'http', why: 'empty' },
    { desc: 'port 0', raw: '0', endpoint: 'http', why: 'outside 1-65535' },
    { desc: 'port too big', raw: '70000', endpoint: 'http', why: 'outside 1-65535' },
    { desc: 'unknown scheme', raw: 'ftp://x:21', endpoint: 'http', why: 'scheme "ftp"' },
    { desc: 'a path', raw: 'http://localhost:8080/api', endpoint: 'http', why: 'path' },
    { desc: 'user info', raw: 'http://me@localhost:8080', endpoint: 'http', why: 'user information' },
    { desc: 'tcp without port', raw: 'db.lan', endpoint: 'tcp', why: 'port is required' },
    { desc: 'file on tcp', raw: 'file:///srv', endpoint: 'tcp', why: 'only work on http' },
    { desc: 'relative file path', raw: 'file://srv/www', endpoint: 'http', why: 'absolute path' },
    { desc: 'file: without slashes', raw: 'file:/srv', endpoint: 'http', why: 'file:///absolute' },
    { desc: 'unix without path', raw: 'unix:', endpoint: 'http', why: 'socket path' },
    { desc: 'bare IPv6', raw: '::1:80', endpoint: 'http', why: 'brackets' },
    { desc: 'port not a number', raw: 'localhost:http', endpoint: 'http', why: 'not a number' },
    { desc: 'scheme without host', raw: 'http://8080', endpoint: 'http', why: 'hostname is required' },
  ] as { desc: string; raw: string; endpoint: EndpointKind; why: string }[])('$desc: "$raw"', ({ raw, endpoint, why }) => {
    let error: unknown
    try {
      parseUpstream(raw, { endpoint })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(WarrenError)
    expect((error as WarrenError).code).toBe('ERR_WARREN_1001')
    expect((error as Error).message).toContain(why)
  })
})
