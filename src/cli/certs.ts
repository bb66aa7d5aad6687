import { parseArgs } from 'node:util'
import { listCertificates, type CertRow } from '../acme/list.ts'
import { loadServerConfig, type ServerFlags } from '../config/server.ts'

export const CERTS_USAGE = 'warren certs list [--config FILE] [--certs DIR] [--json]'

/** Rows as an aligned text table: NAME, SOURCE, ISSUER (CN), NOT AFTER, STATUS, then notes. */
export function formatCertTable(rows: readonly CertRow[]): string {
  const cn = (dn: string) => /(?:^|, )CN=([^,]+)/.exec(dn)?.[1] ?? dn
  const table = [
    ['NAME', 'SOURCE', 'ISSUER', 'NOT AFTER', 'STATUS'],
    ...rows.map((r) => [r.name, r.source, cn(r.issuer) || '-', r.notAfter || '-', r.status]),
  ]
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)))
  const lines = table.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '))
  for (const r of rows) if (r.lastError) lines.push(`${r.name}: last error: ${r.lastError}${r.nextAttemptAt ? ` (next attempt ${r.nextAttemptAt})` : ''}`)
  return lines.join('\n') + '\n'
}

/**
 * `warren certs list`: every certificate in the certs directory (the user's files, ACME, dev
 * leaves) with issuer, expiry and status; `--json` prints the rows as a JSON array. Reads the files,
 * so it works whether or not the edge runs.
 */
export async function certsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { config: { type: 'string' }, certs: { type: 'string' }, json: { type: 'boolean' } },
    allowPositionals: true,
    strict: true,
  })
  if (positionals.length !== 1 || positionals[0] !== 'list') {
    process.stderr.write(`usage: ${CERTS_USAGE}\n`)
    return 2
  }
  const flags: ServerFlags = {}
  if (values.config !== undefined) flags.config = values.config
  if (values.certs !== undefined) flags.certs = values.certs
  const config = loadServerConfig(flags)
  const rows = await listCertificates(config.certsDir)
  if (values.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n')
  else if (rows.length === 0) process.stderr.write(`no certificates in ${config.certsDir}\n`)
  else process.stdout.write(formatCertTable(rows))
  return 0
}
