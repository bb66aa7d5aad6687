import { parseIp } from '../lib/ip.ts'

/** Caps of a PendingGate. */
export interface PendingLimits {
  /** Most pending connections from one source (an IPv4 address, an IPv6 /64). */
  perSource: number
  /** Most pending connections in all. */
  total: number
}

/**
 * The key connections are counted under: the IPv4 address (IPv4-mapped IPv6 included), or the /64
 * of an IPv6 address, since one host or customer usually holds a whole /64.
 */
export function sourceKey(address: string): string {
  if (!address.includes(':')) return address
  const ip = parseIp(address)
  if (!ip) return address
  if (ip.v6) return `${(ip.value >> 64n).toString(16)}::/64`
  return [24n, 16n, 8n, 0n].map((shift) => (ip.value >> shift) & 255n).join('.')
}

/**
 * Counts connections that have not yet shown what they are (an agent before Auth succeeds, a TLS
 * client before its ClientHello is read) and refuses new ones past a cap per source and in total.
 * Each such connection holds buffers and a deadline timer; without caps, a peer that opens them by
 * the thousand holds memory without ever authenticating.
 */
export class PendingGate {
  readonly #limits: PendingLimits
  readonly #bySource = new Map<string, number>()
  #total = 0

  constructor(limits: PendingLimits) {
    this.#limits = limits
  }

  /** Pending connections now. */
  get pending(): number {
    return this.#total
  }

  /** Counts a new connection from `address`; false (and not counted) when a cap is reached. */
  admit(address: string): boolean {
    if (this.#total >= this.#limits.total) return false
    const key = sourceKey(address)
    const n = this.#bySource.get(key) ?? 0
    if (n >= this.#limits.perSource) return false
    this.#bySource.set(key, n + 1)
    this.#total++
    return true
  }

  /** The connection admitted for `address` proved itself or closed. Call once per admitted connection. */
  release(address: string): void {
    const key = sourceKey(address)
    const n = this.#bySource.get(key)
    if (n === undefined) return
    if (n <= 1) this.#bySource.delete(key)
    else this.#bySource.set(key, n - 1)
    this.#total--
  }
}
