/** Helpers for the listeners tests: a TlsFront in process over a policies directory, with dev certificates. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CertStore } from '../certs/index.ts'
import { recordingLogger } from '../certs/testing.ts'
import { PolicyDirectory } from '../config/policies.ts'
import { EndpointStore } from '../endpoints/store.ts'
import { TlsFront, type TlsFrontOptions } from './tls.ts'

/** A started TlsFront on a free loopback port serving `policies` (file name → YAML) as the public port 8443. */
export async function startFront(policies: Record<string, string>, options: Partial<TlsFrontOptions> = {}): Promise<{ front: TlsFront; ca: string; stop(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'warren-tls-front-'))
  const controller = new AbortController()
  mkdirSync(join(dir, 'policies'))
  for (const [name, text] of Object.entries(policies)) writeFileSync(join(dir, 'policies', name), text)
  const store = new EndpointStore()
  const loaded = new PolicyDirectory(join(dir, 'policies'), { defaultPorts: { http: 8080, https: 8443, tls: 8443, tcp: 0 }, defaultAccount: 'default' }).reload()
  store.swap(loaded.table, loaded)
  const certs = new CertStore(join(dir, 'certs'), { mode: 'dev', domain: 'warren.localhost', signal: controller.signal, logger: recordingLogger(), debounceMs: 30 })
  await certs.init()
  const front = new TlsFront({
    hostname: '127.0.0.1',
    port: 0,
    defaultPort: 8443,
    store,
    certs,
    helloTimeoutMs: 3000,
    pending: { total: 100, perSource: 100 },
    idleTimeoutSec: 30,
    http: { idleTimeoutSec: 30, maxBodyBytes: 1 << 20, maxHeaderBytes: 16384, upstreamTimeoutMs: 5000, logRequests: false },
    ...options,
  })
  await front.start()
  return {
    front,
    ca: readFileSync(certs.caPath(), 'utf8'),
    stop() {
      front.stop()
      controller.abort()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
