import { describe, expect, test } from 'bun:test'
import { proxyV1, proxyV2 } from './proxy-protocol.ts'

describe('PROXY protocol headers', () => {
  test.each([
    { desc: 'IPv4', a: { clientIp: '192.0.2.1', clientPort: 5000, serverIp: '198.51.100.2', serverPort: 443 }, want: 'PROXY TCP4 192.0.2.1 198.51.100.2 5000 443\r\n' },
    { desc: 'IPv4-mapped IPv6 becomes IPv4', a: { clientIp: '::ffff:127.0.0.1', clientPort: 1, serverIp: '127.0.0.1', serverPort: 2 }, want: 'PROXY TCP4 127.0.0.1 127.0.0.1 1 2\r\n' },
    { desc: 'IPv6', a: { clientIp: '2001:db8::1', clientPort: 7, serverIp: '::1', serverPort: 8 }, want: 'PROXY TCP6 2001:db8::1 ::1 7 8\r\n' },
  ])('v1 $desc', ({ a, want }) => {
    expect(new TextDecoder().decode(proxyV1(a))).toBe(want)
  })

  test('v2 IPv4 layout', () => {
    const h = proxyV2({ clientIp: '10.0.0.1', clientPort: 0x1234, serverIp: '10.0.0.2', serverPort: 443 })
    expect(h.length).toBe(28)
    expect([...h.subarray(0, 12)]).toEqual([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])
    expect([...h.subarray(12, 28)]).toEqual([0x21, 0x11, 0, 12, 10, 0, 0, 1, 10, 0, 0, 2, 0x12, 0x34, 0x01, 0xbb])
  })

  test('v2 IPv6 layout', () => {
    const h = proxyV2({ clientIp: '2001:db8::1', clientPort: 1, serverIp: '::1', serverPort: 2 })
    expect(h.length).toBe(52)
    expect(h[13]).toBe(0x21)
    expect([...h.subarray(16, 32)]).toEqual([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    expect([...h.subarray(32, 48)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
  })
})
