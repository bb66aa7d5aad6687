import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A self-signed certificate + key made by the openssl CLI for `names` (first = CN). */
export function selfSigned(names: string[], days = 30): { cert: string; key: string; certPath: string; keyPath: string } {
  const dir = mkdtempSync(join(tmpdir(), 'warren-cert-'))
  const certPath = join(dir, 'cert.pem')
  const keyPath = join(dir, 'key.pem')
  const san = names.map((n) => (/^[\d.]+$/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',')
  const r = Bun.spawnSync([
    'openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyPath, '-out', certPath, '-days', String(days), '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${san}`,
  ])
  if (r.exitCode !== 0) throw new Error(`openssl failed: ${r.stderr.toString()}`)
  return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8'), certPath, keyPath }
}

/** Runs `openssl s_client` and returns its combined output (the handshake summary). */
export function sClient(args: string[], input = 'Q\n'): { out: string; code: number } {
  const r = Bun.spawnSync(['openssl', 's_client', ...args], { stdin: Buffer.from(input), timeout: 10_000 })
  return { out: r.stdout.toString() + r.stderr.toString(), code: r.exitCode ?? -1 }
}
