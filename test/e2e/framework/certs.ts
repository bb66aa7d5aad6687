import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { scratchDir } from './scratch.ts'

/** A self-signed certificate + key made by the openssl CLI for `names` (first = CN). */
export function selfSigned(names: string[], days = 30): { cert: string; key: string; certPath: string; keyPath: string } {
  const dir = scratchDir('warren-cert-')
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

/** Like sClient, but without blocking this process (use it when a server in this process must answer). */
export async function sClientAsync(args: string[], input = 'Q\n', holdMs = 700): Promise<{ out: string; code: number }> {
  // -no_ign_eof: quit when stdin ends (-quiet would otherwise wait for the server to close).
  const proc = Bun.spawn(['openssl', 's_client', ...args, '-no_ign_eof'], { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' })
  proc.stdin.write(input)
  proc.stdin.flush()
  // Keep stdin open a moment so the answer arrives before s_client sees EOF.
  const closer = setTimeout(() => proc.stdin.end(), holdMs)
  const killer = setTimeout(() => proc.kill(), 10_000)
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()])
  const code = await proc.exited
  clearTimeout(closer)
  clearTimeout(killer)
  return { out: out + err, code }
}
