/**
 * IP addresses and CIDR ranges as bigints, so IPv4 and IPv6 share one matcher. IPv4-mapped IPv6
 * addresses (`::ffff:1.2.3.4`, what dual-stack sockets report) are treated as the IPv4 address.
 */

export interface Cidr {
  /** The range as written (`10.0.0.0/8`), for result variables and logs. */
  readonly text: string
  readonly v6: boolean
  readonly network: bigint
  readonly mask: bigint
}

function parseV4(text: string): bigint | undefined {
  const parts = text.split('.')
  if (parts.length !== 4) return undefined
  let n = 0n
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined
    n = (n << 8n) | BigInt(Number(p))
  }
  return n
}

function parseV6(text: string): bigint | undefined {
  let s = text
  const zone = s.indexOf('%')
  if (zone !== -1) s = s.slice(0, zone)
  // A trailing dotted quad stands for the last 32 bits.
  let tail: bigint | undefined
  const lastColon = s.lastIndexOf(':')
  if (s.slice(lastColon + 1).includes('.')) {
    tail = parseV4(s.slice(lastColon + 1))
    if (tail === undefined) return undefined
    s = `${s.slice(0, lastColon + 1)}${(tail >> 16n).toString(16)}:${(tail & 0xffffn).toString(16)}`
  }
  const halves = s.split('::')
  if (halves.length > 2) return undefined
  const head = halves[0] ? halves[0].split(':') : []
  const rest = halves.length === 2 && halves[1] ? halves[1].split(':') : []
  const missing = 8 - head.length - rest.length
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest]
  let n = 0n
  for (const g of groups) {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined
    n = (n << 16n) | BigInt(parseInt(g, 16))
  }
  return n
}

/** Parses an IPv4 or IPv6 address; IPv4-mapped IPv6 comes back as IPv4. Undefined when invalid. */
export function parseIp(text: string): { v6: boolean; value: bigint } | undefined {
  const s = text.trim().replace(/^\[(.*)\]$/, '$1')
  if (s.includes(':')) {
    const value = parseV6(s)
    if (value === undefined) return undefined
    if (value >> 32n === 0xffffn) return { v6: false, value: value & 0xffffffffn }
    return { v6: true, value }
  }
  const value = parseV4(s)
  return value === undefined ? undefined : { v6: false, value }
}

/**
 * Parses `addr/bits` (or a bare address, meaning one host). Throws RangeError with a readable message.
 *
 * @example parseCidr('10.0.0.0/8').mask // 0xff000000n
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/')
  const addr = parseIp(slash === -1 ? text : text.slice(0, slash))
  const isMappedText = slash !== -1 && text.includes(':') && addr !== undefined && !addr.v6
  if (!addr) throw new RangeError(`"${text}" is not an IPv4 or IPv6 CIDR`)
  const width = addr.v6 ? 128 : 32
  let bits = width
  if (slash !== -1) {
    const b = text.slice(slash + 1)
    if (!/^\d{1,3}$/.test(b)) throw new RangeError(`"${text}" has an invalid prefix length`)
    bits = Number(b)
    // `::ffff:10.0.0.0/104` is the same range as `10.0.0.0/8`.
    if (isMappedText) bits -= 96
    if (bits < 0 || bits > width) throw new RangeError(`"${text}" has a prefix length outside 0-${isMappedText ? 128 : width}`)
  }
  const all = (1n << BigInt(width)) - 1n
  const mask = bits === 0 ? 0n : (all >> BigInt(width - bits)) << BigInt(width - bits)
  return { text, v6: addr.v6, network: addr.value & mask, mask }
}

/** True when `ip` (already parsed) lies in `cidr`. IPv4 never matches an IPv6 range and vice versa. */
export function cidrContains(cidr: Cidr, ip: { v6: boolean; value: bigint }): boolean {
  return cidr.v6 === ip.v6 && (ip.value & cidr.mask) === cidr.network
}
