import { describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as v from 'valibot'
import { opensslCert, tempDir } from '../certs/testing.ts'
import { ServerConfigSpec } from '../config/schema/v1/server.ts'
import { LETS_ENCRYPT, resolveAcmeSettings } from './settings.ts'

const acmeOf = (acme: unknown) => v.parse(ServerConfigSpec, { tls: { mode: 'acme', acme } }).tls.acme

describe('resolveAcmeSettings()', () => {
  test('defaults: Let’s Encrypt production, http-01 then tls-alpn-01, 10 s on-demand wait, 1 min..1 day retries', () => {
    expect(resolveAcmeSettings(acmeOf({}), '/srv')).toEqual({
      directory: LETS_ENCRYPT.production,
      challenges: ['http-01', 'tls-alpn-01'],
      baseDir: '/srv',
      onDemandTimeoutMs: 10_000,
      pollMs: 1000,
      retryMinMs: 60_000,
      retryMaxMs: 86_400_000,
    })
  })

  test('staging switch; a dns_hook adds dns-01; EAB and email are passed on', () => {
    const s = resolveAcmeSettings(acmeOf({ staging: true, dns_hook: './hook.sh', email: 'ops@example.com', eab: { kid: 'k1', hmac_key: 'c2VjcmV0' } }), '/srv')
    expect(s.directory).toBe(LETS_ENCRYPT.staging)
    expect(s.challenges).toEqual(['http-01', 'tls-alpn-01', 'dns-01'])
    expect(s).toMatchObject({ dnsHook: './hook.sh', email: 'ops@example.com', eab: { kid: 'k1', hmacKey: 'c2VjcmV0' } })
  })

  test('trusted_roots is read relative to the config directory', () => {
    using dir = tempDir()
    writeFileSync(join(dir.path, 'roots.pem'), opensslCert(['DNS:ca.test']).cert)
    const s = resolveAcmeSettings(acmeOf({ directory: 'https://127.0.0.1:14000/dir', trusted_roots: 'roots.pem' }), dir.path)
    expect(s.trustedRoots).toContain('BEGIN CERTIFICATE')
    expect(s.directory).toBe('https://127.0.0.1:14000/dir')
  })

  test.each([
    { desc: 'staging with a directory', acme: { staging: true, directory: 'https://ca.test/dir' }, error: 'set either "directory" or "staging: true", not both' },
    { desc: 'dns-01 without a hook', acme: { challenges: ['dns-01'] }, error: 'challenge "dns-01" needs "dns_hook"' },
    { desc: 'unreadable trusted_roots', acme: { trusted_roots: 'nope.pem' }, error: 'cannot read trusted_roots' },
  ])('rejects $desc (ERR_WARREN_1001)', ({ acme, error }) => {
    expect(() => resolveAcmeSettings(acmeOf(acme), '/nonexistent')).toThrow(error)
    try {
      resolveAcmeSettings(acmeOf(acme), '/nonexistent')
    } catch (err) {
      expect((err as { code: string }).code).toBe('ERR_WARREN_1001')
    }
  })

  test.each([
    { desc: 'a directory that is not a URL', acme: { directory: 'letsencrypt' } },
    { desc: 'an email that is not one', acme: { email: 'ops' } },
    { desc: 'an unknown challenge', acme: { challenges: ['http-02'] } },
    { desc: 'an empty challenge list', acme: { challenges: [] } },
    { desc: 'EAB without hmac_key', acme: { eab: { kid: 'k' } } },
    { desc: 'an unknown key', acme: { dns_hok: 'x' } },
    { desc: 'on_demand_timeout over a minute', acme: { on_demand_timeout: 61 } },
  ])('the schema rejects $desc', ({ acme }) => {
    expect(v.safeParse(ServerConfigSpec, { tls: { mode: 'acme', acme } }).success).toBe(false)
  })
})
