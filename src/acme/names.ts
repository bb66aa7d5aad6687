import { isValidName, normalizeName, wildcardFor } from '../certs/match.ts'
import type { EndpointTable } from '../endpoints/table.ts'

/**
 * Which names the edge may ask a CA for. Only names something on this edge claims: a public
 * https:// or tls:// endpoint the TLS port would route the name to, a domain an account owns, or the
 * edge's own agent-port name. A client's SNI alone never makes a name eligible.
 */
export interface ClaimSources {
  table: EndpointTable
  /** Port a URL without one means on the TLS listener (public_ports.https, else the listener's). */
  httpsPort: number
  /** Domains accounts own (exact or `*.`). */
  accountDomains: readonly string[]
  /** Names the edge itself serves: the agent port's. */
  own: readonly string[]
}

/** Suffixes no public CA issues for (certmagic's list): asking would only burn rate limits. */
const PRIVATE_SUFFIXES = ['.localhost', '.local', '.internal', '.home.arpa', '.invalid']

/**
 * Whether a public CA can issue for `name` (normalized): a valid DNS name with at least two labels,
 * not `localhost` or under a private-use suffix, not an IP address. A `*.` wildcard qualifies when
 * its base does.
 */
export function qualifiesForPublicCert(name: string): boolean {
  if (!isValidName(name) || /^[\d.]+$/.test(name) || name.includes(':')) return false
  const base = name.startsWith('*.') ? name.slice(2) : name
  if (!base.includes('.') || base === 'localhost' || base.includes('*')) return false
  return !PRIVATE_SUFFIXES.some((s) => base.endsWith(s))
}

function accountClaims(domains: readonly string[], name: string): boolean {
  for (const d of domains) {
    const domain = normalizeName(d)
    if (domain === name) return true
    if (domain.startsWith('*.') && name.endsWith(domain.slice(1)) && name.length > domain.length - 1) return true
  }
  return false
}

/**
 * Whether `name` (an SNI, normalized) is claimed, so that a handshake for it may start an on-demand
 * order: an https:// or tls:// public endpoint matches it on the TLS port (exact or wildcard
 * endpoint), an account owns it, or it is the agent port's name.
 *
 * @example
 * isClaimed(sources, 'a.apps.example.com') // true when `https://*.apps.example.com` is an endpoint
 */
export function isClaimed(sources: ClaimSources, name: string): boolean {
  if (!qualifiesForPublicCert(name) || name.startsWith('*.')) return false
  if (sources.own.includes(name)) return true
  const key = { account: '', binding: 'public' as const, host: name, port: sources.httpsPort }
  if (sources.table.lookup({ ...key, scheme: 'https' }) || sources.table.lookup({ ...key, scheme: 'tls' })) return true
  return accountClaims(sources.accountDomains, name)
}

/**
 * The names to hold certificates for ahead of any handshake: exact public https:// endpoint hosts on
 * the TLS port, exact account domains and the agent-port name; with `wildcards` (DNS-01 available)
 * also `*.` endpoint hosts and account domains, and then exact names a wanted wildcard covers are
 * left out. tls:// endpoints are not listed: most pass TLS through, and the ones that terminate at
 * the edge ask for their certificate on the first handshake.
 */
export function wantedNames(sources: ClaimSources, options: { wildcards: boolean }): string[] {
  const names = new Set<string>()
  for (const ep of sources.table.endpoints)
    if (ep.url.binding === 'public' && ep.url.scheme === 'https' && ep.port === sources.httpsPort) names.add(normalizeName(ep.url.host))
  for (const d of sources.accountDomains) names.add(normalizeName(d))
  for (const n of sources.own) names.add(normalizeName(n))
  const eligible = [...names].filter((n) => qualifiesForPublicCert(n) && (options.wildcards || !n.startsWith('*.')))
  const wild = new Set(eligible.filter((n) => n.startsWith('*.')))
  return eligible.filter((n) => n.startsWith('*.') || !wild.has(wildcardFor(n) ?? '')).sort()
}
