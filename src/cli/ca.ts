import { parseArgs } from 'node:util'
import { loadOrCreateDevCa } from '../certs/dev-ca.ts'
import { loadServerConfig, type ServerFlags } from '../config/server.ts'

export const CA_USAGE = 'warren ca path [--config FILE] [--certs DIR]'

/**
 * `warren ca path`: prints the development CA certificate's path (creating the CA when missing),
 * so it can be used in place: `curl --cacert "$(warren ca path)" https://app.warren.localhost:8443`.
 * Only the path goes to stdout; notes go to stderr.
 */
export async function caCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { config: { type: 'string' }, certs: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  })
  if (positionals.length !== 1 || positionals[0] !== 'path') {
    process.stderr.write(`usage: ${CA_USAGE}\n`)
    return 2
  }
  const flags: ServerFlags = {}
  if (values.config !== undefined) flags.config = values.config
  if (values.certs !== undefined) flags.certs = values.certs
  const config = loadServerConfig(flags)
  const { ca, created } = await loadOrCreateDevCa(config.certsDir)
  if (created) process.stderr.write(`created the development CA in ${config.certsDir}\n`)
  if (config.tls.mode !== 'dev')
    process.stderr.write(`note: tls.mode is "${config.tls.mode}"; the edge only issues from this CA in dev mode\n`)
  process.stdout.write(`${ca.certPath}\n`)
  return 0
}
