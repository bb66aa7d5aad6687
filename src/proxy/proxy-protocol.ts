import { isIPv4 } from 'node:net'

export interface Addresses {
  clientIp: string
  clientPort: number
  serverIp: string
  serverPort: number
}

const V2_SIGNATURE = new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])

function stripMapped(ip: string): string {
  return ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip
}

function ipv6Bytes(ip: string): Uint8Array {
  const [head = '', tail = ''] = ip.split('::')
  const parts = (s: string) => (s ? s.split(':') : [])
  let h = parts(head)
  let t = parts(tail)
  // An embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups.
  const last = (t.length ? t : h).at(-1)
  if (last && isIPv4(last)) {
    const [a, b, c, d] = last.split('.').map(Number) as [number, number, number, number]
    const groups = [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)]
    if (t.length) t = [...t.slice(0, -1), ...groups]
    else h = [...h.slice(0, -1), ...groups]
  }
  const zeros = ip.includes('::') ? 8 - h.length - t.length : 0
  const groups = [...h, ...Array(zeros).fill('0'), ...t]
  const out = new Uint8Array(16)
  groups.forEach((g, i) => {
    const n = parseInt(g || '0', 16)
    out[i * 2] = n >> 8
    out[i * 2 + 1] = n & 0xff
  })
  return out
}

/** PROXY protocol v1 (text) header for a TCP connection. */
export function proxyV1(a: Addresses): Uint8Array {
  const src = stripMapped(a.clientIp)
  const dst = stripMapped(a.serverIp)
  const family = isIPv4(src) && isIPv4(dst) ? 'TCP4' : 'TCP6'
  const fix = (ip: string) => (family === 'TCP6' && isIPv4(ip) ? `::ffff:${ip}` : ip)
  return new TextEncoder().encode(`PROXY ${family} ${fix(src)} ${fix(dst)} ${a.clientPort} ${a.serverPort}\r\n`)
}

/** PROXY protocol v2 (binary) header for a TCP connection. */
export function proxyV2(a: Addresses): Uint8Array {
  const src = stripMapped(a.clientIp)
  const dst = stripMapped(a.serverIp)
  const v4 = isIPv4(src) && isIPv4(dst)
  const addrLen = v4 ? 12 : 36
  const out = new Uint8Array(16 + addrLen)
  out.set(V2_SIGNATURE)
  out[12] = 0x21 // version 2, PROXY command
  out[13] = v4 ? 0x11 : 0x21 // TCP over IPv4 / IPv6
  out[14] = addrLen >> 8
  out[15] = addrLen & 0xff
  const view = new DataView(out.buffer)
  if (v4) {
    out.set(src.split('.').map(Number), 16)
    out.set(dst.split('.').map(Number), 20)
    view.setUint16(24, a.clientPort)
    view.setUint16(26, a.serverPort)
  } else {
    out.set(ipv6Bytes(isIPv4(src) ? `::ffff:${src}` : src), 16)
    out.set(ipv6Bytes(isIPv4(dst) ? `::ffff:${dst}` : dst), 32)
    view.setUint16(48, a.clientPort)
    view.setUint16(50, a.serverPort)
  }
  return out
}

export function proxyHeader(version: 0 | 1 | 2, a: Addresses): Uint8Array | undefined {
  return version === 1 ? proxyV1(a) : version === 2 ? proxyV2(a) : undefined
}
