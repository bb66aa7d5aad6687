import { describe, expect, test } from 'bun:test'
import { compileMessage, evalCel, testExchange } from '../testing.ts'

describe('inCidrRange / inCidrRanges / isPrivateIp', () => {
  test.each([
    { expr: "inCidrRange('192.168.1.100', '192.168.1.0/24')", want: true },
    { expr: "inCidrRange('192.168.2.1', '192.168.1.0/24')", want: false },
    { expr: "inCidrRange('10.1.2.3', '10.1.2.3')", want: true },
    { expr: "inCidrRange('2001:4860::8888', '2001:4860::/32')", want: true },
    { expr: "inCidrRange('::ffff:10.0.0.1', '10.0.0.0/8')", want: true },
    { expr: "inCidrRange('10.0.0.1', '::/0')", want: false },
    { expr: "inCidrRange('not an ip', '10.0.0.0/8')", want: false },
    { expr: "inCidrRange(conn.client_ip, vars.range)", want: false, desc: 'an invalid CIDR at run time is false' },
    { expr: "inCidrRanges('192.168.1.100', ['192.168.1.0/24', '10.0.0.0/8'])", want: true },
    { expr: "inCidrRanges('172.16.5.4', ['192.168.1.0/24', '10.0.0.0/8'])", want: false },
    { expr: 'inCidrRanges(conn.client_ip, vars.ranges)', want: true, desc: 'invalid entries are skipped' },
    { expr: "inCidrRanges(conn.client_ip, [])", want: false },
    { expr: "'192.168.1.1'.isPrivateIp()", want: true },
    { expr: "'172.31.255.255'.isPrivateIp()", want: true },
    { expr: "'172.32.0.1'.isPrivateIp()", want: false },
    { expr: "'8.8.8.8'.isPrivateIp()", want: false },
    { expr: "'fd00::1'.isPrivateIp()", want: true },
  ])('$expr → $want', ({ expr, want }) => {
    const ex = testExchange({ client_ip: '10.9.8.7' }, { vars: { range: '10.0.0.0/99', ranges: ['nope', '10.0.0.0/8'] } })
    expect(evalCel(expr, ex)).toBe(want)
  })

  test.each([
    { expr: "inCidrRange(conn.client_ip, '10.0.0.0/33')", error: /"10\.0\.0\.0\/33" is not a valid IPv4 or IPv6 CIDR \(at column 29\)/ },
    { expr: "inCidrRanges(conn.client_ip, ['10.0.0.0/8', '300.0.0.0/8'])", error: /"300\.0\.0\.0\/8" is not a valid .* \(at column 45\)/ },
    { expr: 'inCidrRange(conn.client_ip)', error: /found no matching overload|no such overload/i },
    { expr: "inCidrRange(conn.client_port, '10.0.0.0/8')", error: /found no matching overload.*inCidrRange\(int, string\)/ },
  ])('load error: $expr', ({ expr, error }) => {
    expect(compileMessage(expr)).toMatch(error)
  })
})
