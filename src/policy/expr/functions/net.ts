import type { Environment } from '@marcbachmann/cel-js'
import { cidrContains, parseCidr, parseIp, type Cidr } from '../../../lib/ip.ts'
import { memoize } from '../../../lib/memo.ts'

/** A parsed CIDR (cached: ranges are nearly always literals), or null when the text is invalid. */
export const cidrOf = memoize((text: string): Cidr | null => {
  try {
    return parseCidr(text.trim())
  } catch {
    return null
  }
}, 10_000)

/** Client addresses repeat across a connection's requests and a policy's rules. */
const ipOf = memoize(parseIp, 10_000)

/** ngrok's rule: false for an address that does not parse or a CIDR that does not (no error). */
export function inCidrRange(ip: string, cidr: string): boolean {
  return inCidr(ip, cidrOf(cidr))
}

/** `inCidrRange` with the range already parsed (expr/fast.ts parses a literal one at load). */
export function inCidr(ip: string, range: Cidr | null): boolean {
  const addr = ipOf(ip)
  return addr !== undefined && range !== null && cidrContains(range, addr)
}

export function inCidrRanges(ip: string, cidrs: readonly unknown[]): boolean {
  const addr = ipOf(ip)
  if (addr === undefined) return false
  for (const text of cidrs) {
    const range = typeof text === 'string' ? cidrOf(text) : null
    if (range && cidrContains(range, addr)) return true
  }
  return false
}

/** RFC 1918 ranges, plus IPv6 unique-local fc00::/7 as Go's `net.IP.IsPrivate` has it. */
const PRIVATE = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7']

/** Network functions: `inCidrRange`, `inCidrRanges`, `string.isPrivateIp()`. */
export function registerNet(env: Environment): void {
  env.registerFunction('inCidrRange(string, string): bool', inCidrRange)
  env.registerFunction('inCidrRanges(string, list<string>): bool', inCidrRanges)
  env.registerFunction('string.isPrivateIp(): bool', (ip: string) => inCidrRanges(ip, PRIVATE))
}
