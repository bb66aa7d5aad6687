import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadCertFiles } from '../certs/files.ts'
import { parseCertPair, type CertPair } from '../certs/pair.ts'
import { formatProblem } from './problem.ts'
import { AcmeStore, type StoredCert } from './store.ts'

/**
 * - `valid`: serving, nothing to do yet;
 * - `renewal-due`: past its renewal time (an order is due or running);
 * - `failing`: the last order failed; the certificate still serves until it expires;
 * - `expiring`: a file or dev certificate with less than 14 days left (nobody renews those);
 * - `expired`: past notAfter;
 * - `pending`: claimed, no certificate yet (ordering, or failed with no previous one).
 */
export type CertStatus = 'valid' | 'renewal-due' | 'failing' | 'expiring' | 'expired' | 'pending'

/** One row of `warren certs list` (and of the API's certificate list). */
export interface CertRow {
  /** The ordered name (ACME) or the SANs (files, dev), comma-separated. */
  name: string
  source: CertPair['source']
  /** Issuer DN; empty before the first certificate. */
  issuer: string
  /** ISO time; empty before the first certificate. */
  notAfter: string
  status: CertStatus
  /** ACME: when renewal starts. */
  renewAt?: string
  /** ACME: the last error, with the CA's problem document in one line. */
  lastError?: string
  /** ACME: when the next attempt is due after a failure. */
  nextAttemptAt?: string
  /** Files: the file in certs/. */
  file?: string
}

const EXPIRING_MS = 14 * 24 * 60 * 60 * 1000

/** The row for a stored ACME certificate at `now`. */
export function acmeRow(stored: Pick<StoredCert, 'meta' | 'pair'>, now = Date.now()): CertRow {
  const { meta, pair } = stored
  const err = meta.lastError
  const notAfter = pair?.notAfter.getTime()
  const renewAt = meta.renewAt ? Date.parse(meta.renewAt) : NaN
  let status: CertStatus
  if (notAfter === undefined) status = 'pending'
  else if (notAfter <= now) status = 'expired'
  else if (err) status = 'failing'
  else if (!Number.isNaN(renewAt) && renewAt <= now) status = 'renewal-due'
  else status = 'valid'
  return {
    name: meta.name,
    source: 'acme',
    issuer: pair?.issuer ?? meta.issuer ?? '',
    notAfter: pair?.notAfter.toISOString() ?? '',
    status,
    ...(meta.renewAt ? { renewAt: meta.renewAt } : {}),
    ...(err ? { lastError: err.problem ? `${err.message} [${formatProblem(err.problem)}]` : err.message, nextAttemptAt: err.nextAttemptAt } : {}),
  }
}

function plainRow(pair: CertPair, now: number, file?: string): CertRow {
  const left = pair.notAfter.getTime() - now
  return {
    name: pair.names.join(','),
    source: pair.source,
    issuer: pair.issuer,
    notAfter: pair.notAfter.toISOString(),
    status: left <= 0 ? 'expired' : left < EXPIRING_MS ? 'expiring' : 'valid',
    ...(file ? { file } : {}),
  }
}

/**
 * Every certificate in a certs directory as the edge would see it on start: the user's files, the
 * ACME certificates (with metadata) and cached dev leaves. Reads files only, so it works with or
 * without a running edge.
 *
 * @example
 * for (const row of await listCertificates('/srv/warren/certs')) console.log(row.name, row.status)
 */
export async function listCertificates(certsDir: string, options: { now?: number } = {}): Promise<CertRow[]> {
  const now = options.now ?? Date.now()
  const rows: CertRow[] = []
  const { loaded } = await loadCertFiles(certsDir)
  for (const l of loaded) rows.push(plainRow(l.pair, now, l.file))
  for (const stored of await new AcmeStore(certsDir).load()) rows.push(acmeRow(stored, now))
  const devDir = join(certsDir, 'dev')
  let devFiles: string[] = []
  try {
    devFiles = (await readdir(devDir)).filter((f) => f.endsWith('.pem') && !f.startsWith('.')).sort()
  } catch {}
  for (const f of devFiles) {
    try {
      const text = await readFile(join(devDir, f), 'utf8')
      rows.push(plainRow(parseCertPair(text, text, 'dev'), now))
    } catch {}
  }
  return rows
}
