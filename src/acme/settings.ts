import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import * as acme from 'acme-client'
import type { ServerConfig } from '../config/schema/v1/server.ts'
import { CODES, WarrenError } from '../lib/errors.ts'
import type { ChallengeType } from './issue.ts'

/** `tls.acme` after defaults, checks and file reads: what the manager runs with. */
export interface AcmeSettings {
  directory: string
  email?: string
  /** HMAC key stays out of logs: nothing logs settings whole. */
  eab?: { kid: string; hmacKey: string }
  challenges: ChallengeType[]
  dnsHook?: string
  /** Where the hook runs (the config file's directory). */
  baseDir: string
  /** PEM text of `trusted_roots`. */
  trustedRoots?: string
  onDemandTimeoutMs: number
  pollMs: number
  retryMinMs: number
  retryMaxMs: number
}

type AcmeConfig = NonNullable<ServerConfig['tls']['acme']>

export const LETS_ENCRYPT = acme.directory.letsencrypt

/**
 * Checks and completes `tls.acme`: staging and directory are exclusive, dns-01 needs `dns_hook`,
 * `trusted_roots` must be a readable PEM file. Relative paths resolve against `baseDir`.
 * Throws `WarrenError` (ERR_WARREN_1001) naming the key.
 */
export function resolveAcmeSettings(config: AcmeConfig | undefined, baseDir: string): AcmeSettings {
  const c: Partial<AcmeConfig> = config ?? {}
  const bad = (message: string) => new WarrenError(CODES.CONFIG_INVALID, `Invalid tls.acme: ${message}`)
  if (c.staging && c.directory) throw bad('set either "directory" or "staging: true", not both')
  const challenges: ChallengeType[] = c.challenges ? [...new Set(c.challenges)] : ['http-01', 'tls-alpn-01', ...(c.dns_hook ? (['dns-01'] as const) : [])]
  if (challenges.includes('dns-01') && !c.dns_hook) throw bad('challenge "dns-01" needs "dns_hook" (the command that sets the TXT record)')
  let trustedRoots: string | undefined
  if (c.trusted_roots) {
    const path = resolve(baseDir, c.trusted_roots)
    try {
      trustedRoots = readFileSync(path, 'utf8')
    } catch (err) {
      throw bad(`cannot read trusted_roots "${path}": ${(err as Error).message}`)
    }
    if (!trustedRoots.includes('-----BEGIN CERTIFICATE-----')) throw bad(`trusted_roots "${path}" holds no PEM certificate`)
  }
  const retryMinMs = (c.retry_min ?? 60) * 1000
  const retryMaxMs = Math.max(retryMinMs, (c.retry_max ?? 86400) * 1000)
  return {
    directory: c.directory ?? (c.staging ? LETS_ENCRYPT.staging : LETS_ENCRYPT.production),
    ...(c.email ? { email: c.email } : {}),
    ...(c.eab ? { eab: { kid: c.eab.kid, hmacKey: c.eab.hmac_key } } : {}),
    challenges,
    ...(c.dns_hook ? { dnsHook: c.dns_hook } : {}),
    baseDir,
    ...(trustedRoots ? { trustedRoots } : {}),
    onDemandTimeoutMs: (c.on_demand_timeout ?? 10) * 1000,
    pollMs: (c.poll_interval ?? 1) * 1000,
    retryMinMs,
    retryMaxMs,
  }
}
