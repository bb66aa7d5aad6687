/**
 * Debian's pebble (a test ACME CA) and pebble-challtestsrv (its fake DNS) on loopback, wired as in
 * reference/platform-notes.md §1: every name resolves to 127.0.0.1, and pebble validates HTTP-01 and
 * TLS-ALPN-01 against the ports it is given (the edge's). Installs the package when missing (root).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tls from 'node:tls'
import type { Subprocess } from 'bun'
import { ensureDebianPackage } from './apt.ts'
import { freePort } from './ports.ts'

/** Why pebble cannot run here, or undefined when it can (installs it with apt-get when missing and root). */
export function pebbleUnavailable(): string | undefined {
  const have = () => Bun.which('pebble') !== null && Bun.which('pebble-challtestsrv') !== null
  if (have()) return undefined
  if (Bun.which('openssl') === null) return 'openssl is missing'
  return ensureDebianPackage('pebble', have) ? undefined : 'the Debian package "pebble" (pebble, pebble-challtestsrv) is not installed and could not be installed (apt-get install -y pebble)'
}

/** A minica + a localhost/127.0.0.1 certificate for pebble's own HTTPS (the package ships none). */
export interface PebbleTls {
  dir: string
  /** The minica: what the edge must trust for the directory (tls.acme.trusted_roots). */
  caPath: string
  certPath: string
  keyPath: string
  remove(): void
}

export function makePebbleTls(): PebbleTls {
  const dir = mkdtempSync(join(tmpdir(), 'warren-pebble-'))
  const run = (args: string[]) => {
    const r = Bun.spawnSync(['openssl', ...args], { cwd: dir, stderr: 'pipe' })
    if (r.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.toString()}`)
  }
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  run(['req', '-x509', ...ec, '-days', '30', '-subj', '/CN=pebble-minica', '-keyout', 'ca.key', '-out', 'ca.pem'])
  run(['req', ...ec, '-subj', '/CN=localhost', '-keyout', 'key.pem', '-out', 'csr.pem'])
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
  run(['x509', '-req', '-in', 'csr.pem', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '30', '-extfile', 'ext.cnf', '-out', 'cert.pem'])
  return { dir, caPath: join(dir, 'ca.pem'), certPath: join(dir, 'cert.pem'), keyPath: join(dir, 'key.pem'), remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Collects a child's output and lets tests wait for a line. */
function capture(proc: Subprocess<'ignore', 'pipe', 'pipe'>, tag: string) {
  let text = ''
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder()
    for await (const chunk of stream) {
      const s = decoder.decode(chunk, { stream: true })
      text += s
      if (process.env.WARREN_E2E_VERBOSE) process.stderr.write(`[${tag}] ${s}`)
    }
  }
  void pump(proc.stdout)
  void pump(proc.stderr)
  return () => text
}

async function waitUntil(check: () => Promise<boolean>, what: string, logs: () => string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await check().catch(() => false)) return
    await Bun.sleep(25)
  }
  throw new Error(`${what} did not come up within ${ms} ms:\n${logs()}`)
}

export interface ChallTestSrv {
  dnsPort: number
  /** `http://127.0.0.1:<port>`: POST /set-txt {host, value}, /clear-txt {host}. */
  management: string
  stop(): Promise<void>
}

/** Fake DNS for pebble's VA: A → 127.0.0.1, no AAAA, TXT records set through the management API. */
export async function startChallTestSrv(): Promise<ChallTestSrv> {
  const dnsPort = await freePort()
  const mgmtPort = await freePort()
  const proc = Bun.spawn(
    ['pebble-challtestsrv', '-dns01', `127.0.0.1:${dnsPort}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${mgmtPort}`, '-defaultIPv6', '', '-defaultIPv4', '127.0.0.1'],
    { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' },
  )
  const logs = capture(proc, 'challtestsrv')
  const management = `http://127.0.0.1:${mgmtPort}`
  // Any answer (even 404/405) means the management server is up.
  await waitUntil(async () => (await fetch(`${management}/`)).status > 0, 'pebble-challtestsrv', logs)
  return {
    dnsPort,
    management,
    async stop() {
      proc.kill()
      await proc.exited
    },
  }
}

export interface Pebble {
  /** `https://127.0.0.1:<port>/dir` */
  directory: string
  port: number
  managementPort: number
  /** Pebble's current root (regenerated on every start), from its management endpoint. */
  root(): Promise<string>
  logs(): string
  stop(): Promise<void>
}

export interface PebbleOptions {
  tls: PebbleTls
  /** The edge's plaintext port (HTTP-01) and TLS port (TLS-ALPN-01). */
  httpPort: number
  tlsPort: number
  dnsPort: number
  /** Certificate lifetime in seconds (pebble's default is 5 years). */
  validitySeconds?: number
  /** ACME port to use (to restart on the same directory URL). */
  port?: number
  managementPort?: number
}

/** Starts pebble with PEBBLE_VA_NOSLEEP=1 and no nonce rejections, and waits for its directory. */
export async function startPebble(options: PebbleOptions): Promise<Pebble> {
  const port = options.port ?? (await freePort())
  const managementPort = options.managementPort ?? (await freePort())
  const configPath = join(options.tls.dir, `pebble-${port}.json`)
  writeFileSync(
    configPath,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${port}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: options.tls.certPath,
        privateKey: options.tls.keyPath,
        httpPort: options.httpPort,
        tlsPort: options.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        ...(options.validitySeconds ? { certificateValidityPeriod: options.validitySeconds } : {}),
      },
    }),
  )
  const proc = Bun.spawn(['pebble', '-config', configPath, '-dnsserver', `127.0.0.1:${options.dnsPort}`], {
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
  })
  const logs = capture(proc, `pebble:${port}`)
  const ca = await Bun.file(options.tls.caPath).text()
  const directory = `https://127.0.0.1:${port}/dir`
  await waitUntil(async () => (await fetch(directory, { tls: { ca } })).ok, 'pebble', logs)
  return {
    directory,
    port,
    managementPort,
    root: async () => await (await fetch(`https://127.0.0.1:${managementPort}/roots/0`, { tls: { ca } })).text(),
    logs,
    async stop() {
      proc.kill()
      await proc.exited
    },
  }
}

/** Pebble's order count so far, from its log ("There are now N orders in the db"). */
export function pebbleOrders(p: Pebble): number {
  const all = [...p.logs().matchAll(/There are now (\d+) orders in the db/g)]
  return all.length ? Number(all.at(-1)![1]) : 0
}

/** The certificate the TLS port serves for `name`, verified against `ca`. */
export function served(port: number, name: string, ca: string): Promise<{ authorized: boolean; error?: string; san: string; serial: string; issuer: string }> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, servername: name, ca: readFileSync(ca), rejectUnauthorized: false }, () => {
      const cert = sock.getPeerCertificate()
      resolve({
        authorized: sock.authorized,
        ...(sock.authorizationError ? { error: String(sock.authorizationError) } : {}),
        san: cert.subjectaltname ?? '',
        serial: cert.serialNumber,
        issuer: String(cert.issuer?.CN ?? ''),
      })
      sock.destroy()
    })
    sock.on('error', reject)
  })
}
