import { describe, expect, test } from 'bun:test'
import { CODES, WarrenError } from '../lib/errors.ts'
import { listenFailure, openListener } from './listen-error.ts'

describe('listenFailure()', () => {
  test.each([
    { desc: 'in use', code: 'EADDRINUSE', want: /^Cannot listen on 127\.0\.0\.1:8443 \(listen\.https\): address already in use \(EADDRINUSE\)\. Hint: .*sport = :8443.*--https HOST:PORT/ },
    { desc: 'privileged port', code: 'EACCES', want: /^Cannot listen on 127\.0\.0\.1:8443 \(listen\.https\): permission denied \(EACCES\)\. Hint: .*cap_net_bind_service.*public_ports/ },
    { desc: 'foreign address', code: 'EADDRNOTAVAIL', want: /not one of this host \(EADDRNOTAVAIL\)/ },
    { desc: 'unknown cause', code: undefined, want: /^Cannot listen on 127\.0\.0\.1:8443 \(listen\.https\): failed\. Hint: choose another address/ },
  ])('$desc', ({ code, want }) => {
    const err = listenFailure(Object.assign(new Error('Failed to listen at 127.0.0.1'), code ? { code } : {}), 'https', '127.0.0.1:8443')
    expect(err.code).toBe(CODES.LISTEN_FAILED)
    expect(err.message).toMatch(want)
  })

  test('an error that is already a WarrenError passes unchanged', async () => {
    const original = new WarrenError(CODES.CONFIG_INVALID, 'api_keys[0]: not a sha256 digest')
    expect(await openListener('api', '127.0.0.1:4041', () => Promise.reject(original)).catch((e: unknown) => e)).toBe(original)
  })
})
