import { isIP } from 'node:net'
import type { CertPair } from './pair.ts'

/**
 * Which certificate serves a TLS server name. Names are compared in one canonical form:
 * lower-case, no trailing dot, IPv6 compressed (`::1`, never `0:0:0:0:0:0:0:1`).
 */

/** The canonical form of a DNS name, wildcard pattern or IP address. */
export function normalizeName(name: string): string {
  let n = name.trim().toLowerCase()
  if (n.startsWith('[') && n.endsWith(']')) n = n.slice(1, -1)
  const family = isIP(n)
  // The URL parser compresses IPv6 the way RFC 5952 asks; node prints SANs uncompressed.
  if (family === 6) return new URL(`http://[${n}]/`).hostname.slice(1, -1)
  if (family === 4) return n
  return n.endsWith('.') ? n.slice(0, -1) : n
}

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/

/**
 * Whether a certificate may be issued for `name` (already normalized): an IP address, or a DNS name
 * of at most 253 characters whose first label may be `*`. Guards the dev CA against garbage SNI.
 */
export function isValidName(name: string): boolean {
  if (isIP(name)) return true
  if (name.length === 0 || name.length > 253) return false
  const labels = name.split('.')
  if (labels[0] === '*') labels.shift()
  return labels.length > 0 && labels.every((l) => LABEL.test(l))
}

/** Whether `name` is an IP address (either family). */
export function isIpName(name: string): boolean {
  return isIP(name) !== 0
}

/**
 * The one wildcard pattern that covers `name` under TLS rules: `*` stands for exactly one whole
 * left-most label, so `a.example.com` → `*.example.com`, and nothing covers an IP or a wildcard.
 */
export function wildcardFor(name: string): string | undefined {
  if (isIP(name) || name.startsWith('*.')) return undefined
  const dot = name.indexOf('.')
  if (dot <= 0 || dot === name.length - 1) return undefined
  return `*${name.slice(dot)}`
}

/** SAN → the pairs that carry it (exact names and `*.` patterns as written in the certificate). */
export type CertIndex = ReadonlyMap<string, readonly CertPair[]>

export function buildIndex(pairs: Iterable<CertPair>): CertIndex {
  const index = new Map<string, CertPair[]>()
  for (const pair of pairs)
    for (const name of new Set(pair.names)) {
      const list = index.get(name)
      if (list) list.push(pair)
      else index.set(name, [pair])
    }
  return index
}

const SOURCE_RANK: Record<CertPair['source'], number> = { file: 0, acme: 1, dev: 2 }

/**
 * Picks the certificate for `serverName` (normalized). Order, first difference wins:
 * 1. an unexpired certificate over an expired one;
 * 2. the source: the user's own files, then ACME, then the dev CA — a wildcard the user dropped in
 *    certs/ takes over from leaves the dev CA issued earlier;
 * 3. an exact SAN over the wildcard SAN;
 * 4. the later notAfter.
 *
 * @example
 * selectFrom(buildIndex(pairs), 'a.example.com') // exact 'a.example.com', else '*.example.com'
 */
export function selectFrom(index: CertIndex, serverName: string, now = Date.now()): CertPair | undefined {
  const exact = index.get(serverName) ?? []
  const pattern = wildcardFor(serverName)
  const wild = pattern === undefined ? [] : (index.get(pattern) ?? [])
  let best: CertPair | undefined
  let bestKey: number[] = []
  for (const [list, specificity] of [[exact, 0], [wild, 1]] as const)
    for (const pair of list) {
      const key = [pair.notAfter.getTime() <= now ? 1 : 0, SOURCE_RANK[pair.source], specificity, -pair.notAfter.getTime()]
      if (!best || compareKeys(key, bestKey) < 0) {
        best = pair
        bestKey = key
      }
    }
  return best
}

function compareKeys(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}
