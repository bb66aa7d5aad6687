import { createHash, timingSafeEqual } from 'node:crypto'

/** An account as the tunnel sees it: who may connect, which names and ports it may bind. */
export interface Account {
  name: string
  /** SHA-256 digests of the authtokens (plain ones are hashed at load). */
  tokenDigests: Buffer[]
  /** Owned domains: exact names or `*.` wildcards (a wildcard owns every name below it). */
  domains: string[]
  /** Inclusive port ranges for tcp:// endpoints. */
  tcpPorts: [number, number][]
  /** SHA-256 digests of the public-key blobs that may log in over SSH (OpenSSH's `SHA256:` fingerprint, decoded). */
  sshKeyDigests: Buffer[]
}

/** SHA-256 of an authtoken, whether configured plain or as `sha256:<hex>`. */
export function tokenDigest(secret: string): Buffer {
  if (/^sha256:[0-9a-f]{64}$/i.test(secret)) return Buffer.from(secret.slice(7), 'hex')
  return createHash('sha256').update(secret).digest()
}

/** Parses `"20000-20999, 30000"` into ranges; throws on nonsense. */
export function parsePortRanges(text: string | undefined): [number, number][] {
  if (!text) return []
  return text.split(',').map((part) => {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part)
    if (!m) throw new RangeError(`invalid port range "${part.trim()}"`)
    const lo = Number(m[1])
    const hi = Number(m[2] ?? m[1])
    if (lo < 1 || hi > 65535 || lo > hi) throw new RangeError(`invalid port range "${part.trim()}"`)
    return [lo, hi] as [number, number]
  })
}

/**
 * The digest of an `ssh_keys` entry: an authorized_keys line (`ssh-ed25519 AAAA… comment`) is hashed,
 * a `sha256:` fingerprint (as `ssh-keygen -l` prints it, base64) is decoded. Throws on anything else.
 */
export function sshKeyDigest(entry: string): Buffer {
  const text = entry.trim()
  const fingerprint = /^sha256:([A-Za-z0-9+/]{43})=?$/i.exec(text)
  if (fingerprint) return Buffer.from(fingerprint[1]!, 'base64')
  const line = /^([a-z0-9@.-]+)\s+([A-Za-z0-9+/]+={0,2})(?:\s.*)?$/i.exec(text)
  if (line) {
    const blob = Buffer.from(line[2]!, 'base64')
    // The blob starts with its own key type: a line whose two halves disagree is a copy-paste accident.
    const typeLength = blob.length >= 4 ? blob.readUInt32BE(0) : -1
    if (typeLength > 0 && blob.length >= 4 + typeLength && blob.toString('latin1', 4, 4 + typeLength) === line[1]) return createHash('sha256').update(blob).digest()
  }
  throw new RangeError(`invalid SSH key "${text.length > 24 ? text.slice(0, 24) + '…' : text}": use an authorized_keys line or sha256:<fingerprint>`)
}

export function makeAccount(spec: { name: string; authtokens: string[]; domains: string[]; tcp_ports?: string | undefined; ssh_keys?: string[] | undefined }): Account {
  return {
    name: spec.name,
    tokenDigests: spec.authtokens.map(tokenDigest),
    domains: spec.domains.map((d) => d.toLowerCase()),
    tcpPorts: parsePortRanges(spec.tcp_ports),
    sshKeyDigests: (spec.ssh_keys ?? []).map(sshKeyDigest),
  }
}

/**
 * Finds the account an authtoken belongs to. Every configured token is compared (in constant time,
 * over digests) so timing tells nothing about which tokens exist or how much of one matched.
 */
export function accountForToken(accounts: readonly Account[], token: string): Account | undefined {
  return accountForDigest(accounts, createHash('sha256').update(token).digest(), (a) => a.tokenDigests)
}

/** Finds the account whose `ssh_keys` list this public-key blob, the same way. */
export function accountForSshKey(accounts: readonly Account[], keyBlob: Uint8Array): Account | undefined {
  return accountForDigest(accounts, createHash('sha256').update(keyBlob).digest(), (a) => a.sshKeyDigests)
}

function accountForDigest(accounts: readonly Account[], digest: Buffer, digestsOf: (account: Account) => Buffer[]): Account | undefined {
  let found: Account | undefined
  for (const account of accounts)
    for (const candidate of digestsOf(account)) if (timingSafeEqual(candidate, digest) && !found) found = account
  return found
}

/** True when the account owns `host` (exact, or under one of its wildcards). */
export function ownsHost(account: Account, host: string): boolean {
  for (const d of account.domains) {
    if (d === host) return true
    if (d.startsWith('*.') && host.endsWith(d.slice(1)) && host.length > d.length - 1) return true
  }
  return false
}

export function ownsTcpPort(account: Account, port: number): boolean {
  return account.tcpPorts.some(([lo, hi]) => port >= lo && port <= hi)
}
