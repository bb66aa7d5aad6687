import { describe, expect, test } from 'bun:test'
import { cidrContains, parseCidr, parseIp } from './ip.ts'

describe('parseIp()', () => {
  test.each<{ text: string; want: { v6: boolean; value: bigint } | undefined }>([
    { text: '10.0.0.1', want: { v6: false, value: 0x0a000001n } },
    { text: '::ffff:10.0.0.1', want: { v6: false, value: 0x0a000001n } },
    { text: '::1', want: { v6: true, value: 1n } },
    { text: '[2001:db8::1]', want: { v6: true, value: 0x20010db8000000000000000000000001n } },
    { text: 'fe80::1%eth0', want: { v6: true, value: 0xfe800000000000000000000000000001n } },
    { text: '256.0.0.1', want: undefined },
    { text: '1:2:3:4:5:6:7:8:9', want: undefined },
    { text: '1::2::3', want: undefined },
    { text: '', want: undefined },
  ])('$text', ({ text, want }) => expect(parseIp(text)).toEqual(want))
})

describe('parseCidr() and cidrContains()', () => {
  test.each<{ cidr: string; ip: string; want: boolean }>([
    { cidr: '10.0.0.0/8', ip: '10.255.0.1', want: true },
    { cidr: '10.0.0.0/8', ip: '11.0.0.1', want: false },
    { cidr: '0.0.0.0/0', ip: '198.51.100.7', want: true },
    { cidr: '0.0.0.0/0', ip: '::1', want: false },
    { cidr: '::/0', ip: '2001:db8::1', want: true },
    { cidr: '2001:db8::/32', ip: '2001:db8:ffff::1', want: true },
    { cidr: '2001:db8::/32', ip: '2001:db9::1', want: false },
    { cidr: '192.0.2.5', ip: '192.0.2.5', want: true },
    { cidr: '::ffff:10.0.0.0/104', ip: '10.1.2.3', want: true },
  ])('$cidr contains $ip: $want', ({ cidr, ip, want }) => expect(cidrContains(parseCidr(cidr), parseIp(ip)!)).toBe(want))

  test.each(['10.0.0.0/33', '::/129', '10.0.0.0/x', 'example.com', '10.0.0/8'])('rejects "%s"', (text) => {
    expect(() => parseCidr(text)).toThrow(RangeError)
  })
})
