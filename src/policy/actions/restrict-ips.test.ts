import { describe, expect, test } from 'bun:test'
import { exchange, loadError, responded, run, type ActionCase } from '../../../test/helpers/actions.ts'

describe('restrict-ips config', () => {
  test.each<{ desc: string; config: unknown; want: RegExp | undefined }>([
    { desc: 'allow list', config: { allow: ['10.0.0.0/8', '2001:db8::/32'] }, want: undefined },
    { desc: 'allow and deny', config: { allow: ['0.0.0.0/0', '::/0'], deny: ['10.1.2.3'] }, want: undefined },
    { desc: 'nothing listed', config: {}, want: /at least one CIDR/ },
    { desc: 'deny only refuses everyone', config: { deny: ['10.0.0.0/8'] }, want: /add allow: \["0\.0\.0\.0\/0", "::\/0"\]/ },
    { desc: 'bad CIDR', config: { allow: ['10.0.0.0/33'] }, want: /allow\[0\]: "10\.0\.0\.0\/33" has a prefix length outside 0-32/ },
    { desc: 'not an address', config: { allow: ['example.com'] }, want: /not an IPv4 or IPv6 CIDR/ },
    { desc: 'ip_policies are ngrok-hosted', config: { allow: ['0.0.0.0/0'], ip_policies: ['ipp_123'] }, want: /does not have/ },
  ])('$desc', ({ config, want }) => {
    const got = loadError({ type: 'restrict-ips', config })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('restrict-ips at runtime (L4 address only)', () => {
  const config = { allow: ['203.0.113.0/24', '2001:db8::/32'], deny: ['203.0.113.66/32'] }
  test.each<{ desc: string; ip: string; c?: Partial<ActionCase>; result: { action: string; matched_cidr: string }; outcome: 'continue' | 403 | 'close' }>([
    { desc: 'allowed IPv4', ip: '203.0.113.7', result: { action: 'allow', matched_cidr: '203.0.113.0/24' }, outcome: 'continue' },
    { desc: 'IPv4-mapped IPv6 peer counts as IPv4', ip: '::ffff:203.0.113.7', result: { action: 'allow', matched_cidr: '203.0.113.0/24' }, outcome: 'continue' },
    { desc: 'allowed IPv6', ip: '2001:db8:0:1::5', result: { action: 'allow', matched_cidr: '2001:db8::/32' }, outcome: 'continue' },
    { desc: 'deny wins over allow', ip: '203.0.113.66', result: { action: 'deny', matched_cidr: '203.0.113.66/32' }, outcome: 403 },
    { desc: 'outside allow', ip: '198.51.100.1', result: { action: 'deny', matched_cidr: '' }, outcome: 403 },
    { desc: 'IPv6 outside allow', ip: '2001:db9::1', result: { action: 'deny', matched_cidr: '' }, outcome: 403 },
    { desc: 'on_tcp_connect closes', ip: '198.51.100.1', c: { phase: 'on_tcp_connect', scheme: 'tcp' }, result: { action: 'deny', matched_cidr: '' }, outcome: 'close' },
    { desc: 'enforce false continues', ip: '198.51.100.1', c: { config: { ...config, enforce: false } }, result: { action: 'deny', matched_cidr: '' }, outcome: 'continue' },
  ])('$desc', async ({ ip, c, result, outcome }) => {
    const ex = exchange('http://a.test/', { headersInit: { 'x-forwarded-for': '203.0.113.7' } })
    ;(ex.conn as { clientIp: string }).clientIp = ip
    const got = await run({ type: 'restrict-ips', config, ...c }, ex)
    expect(ex.actions['restrict_ips']).toEqual({ ...result, error: { code: '', message: '' } })
    if (outcome === 403) {
      expect(responded(got)!.status).toBe(403)
      expect(responded(got)!.headers.get('warren-error-code')).toBe('ERR_WARREN_2102')
    } else expect(got.kind).toBe(outcome)
  })

  test('X-Forwarded-For never decides', async () => {
    const ex = exchange('http://a.test/', { headersInit: { 'x-forwarded-for': '203.0.113.7' } })
    ;(ex.conn as { clientIp: string }).clientIp = '198.51.100.1'
    expect(responded(await run({ type: 'restrict-ips', config: { allow: ['203.0.113.0/24'] } }, ex))!.status).toBe(403)
  })
})
