import { describe, expect, test } from 'bun:test'
import { generateKeyPairSync } from 'node:crypto'
import { exchange, loadError, run, type ActionCase } from '../../../test/helpers/actions.ts'

const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()

describe('terminate-tls config (wired by the TLS listener; validated here)', () => {
  test.each<{ desc: string; c: Partial<ActionCase>; want: RegExp | undefined }>([
    { desc: 'defaults on https', c: {}, want: undefined },
    { desc: 'tls endpoint', c: { scheme: 'tls' }, want: undefined },
    { desc: 'TLS 1.3 only', c: { config: { min_version: '1.3', max_version: '1.3' } }, want: undefined },
    { desc: 'http endpoint', c: { scheme: 'http' }, want: /applies to https:\/\/ and tls:\/\/ endpoints, not http:\/\// },
    { desc: 'tcp endpoint', c: { scheme: 'tcp' }, want: /not tcp:\/\// },
    { desc: 'on_http_request', c: { phase: 'on_http_request' }, want: /cannot run in on_http_request/ },
    { desc: 'bad version', c: { config: { min_version: '1.1' } }, want: /must be "1\.2" or "1\.3"/ },
    { desc: 'min above max', c: { config: { min_version: '1.3', max_version: '1.2' } }, want: /min_version 1\.3 is above max_version 1\.2/ },
    { desc: 'certificate without key', c: { config: { server_certificate: '-----BEGIN CERTIFICATE-----' } }, want: /go together/ },
    { desc: 'certificate that is not PEM', c: { config: { server_certificate: 'nope', server_private_key: otherKey } }, want: /server_certificate is not a PEM certificate/ },
    { desc: 'bad CA', c: { config: { mutual_tls_certificate_authorities: ['nope'] } }, want: /mutual_tls_certificate_authorities\[0\] is not a PEM certificate/ },
    { desc: 'bad strategy', c: { config: { mutual_tls_verification_strategy: 'maybe' } }, want: /mutual_tls_verification_strategy/ },
    { desc: 'templated PEM waits for the TLS layer', c: { config: { server_certificate: '${vars.cert}', server_private_key: '${vars.key}' } }, want: undefined },
  ])('$desc', ({ c, want }) => {
    const got = loadError({ type: 'terminate-tls', phase: 'on_tcp_connect', scheme: 'https', ...c })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })

  test('runs as a no-op until the TLS layer applies it', async () => {
    expect((await run({ type: 'terminate-tls', phase: 'on_tcp_connect', scheme: 'https' }, exchange())).kind).toBe('continue')
  })
})
