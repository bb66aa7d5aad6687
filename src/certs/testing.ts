/** Helpers for the certs tests: temp dirs, certificates made by openssl, a logger that records. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Level, Logger } from '../lib/log.ts'

export function tempDir(prefix = 'warren-certs-'): { path: string; [Symbol.dispose](): void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) }
}

/**
 * A self-signed P-256 certificate for `sans` (`DNS:a.test`, `IP:127.0.0.1`) made by the openssl
 * CLI, so the parser is tested on files it did not write. `days` may be 0 for "expires now".
 */
export function opensslCert(sans: string[], options: { days?: number } = {}): { cert: string; key: string } {
  using dir = tempDir('warren-openssl-')
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=test']
  if (sans.length) args.push('-addext', `subjectAltName=${sans.join(',')}`)
  args.push('-days', String(options.days ?? 30), '-keyout', join(dir.path, 'k.pem'), '-out', join(dir.path, 'c.pem'))
  const r = Bun.spawnSync(['openssl', ...args], { stderr: 'pipe' })
  if (r.exitCode !== 0) throw new Error(`openssl failed: ${r.stderr.toString()}`)
  return { cert: readFileSync(join(dir.path, 'c.pem'), 'utf8'), key: readFileSync(join(dir.path, 'k.pem'), 'utf8') }
}

export interface Recorded {
  level: Level
  msg: string
  fields: Record<string, unknown>
}

/** A Logger that keeps every line in `lines`. */
export function recordingLogger(): Logger & { lines: Recorded[] } {
  const lines: Recorded[] = []
  function make(base: Record<string, unknown>): Logger {
    const emit = (level: Level) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields: { ...base, ...fields } })
    return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error'), child: (f) => make({ ...base, ...f }), enabled: () => true }
  }
  return Object.assign(make({}), { lines })
}

/** Resolves once `predicate` holds, polling; rejects after `ms`. */
export async function waitFor(predicate: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > end) throw new Error('waitFor: timed out')
    await Bun.sleep(20)
  }
}
