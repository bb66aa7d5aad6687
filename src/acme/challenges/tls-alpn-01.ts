import type { Socket } from 'bun'
import * as tls from 'node:tls'
import * as acme from 'acme-client'
import type { Logger } from '../../lib/log.ts'
import { relayTo, type RelayConn } from '../../proxy/tcp-relay.ts'
import type { Solver } from '../issue.ts'

/** ALPN protocol id of RFC 8737; only ACME validators offer it. */
export const ACME_TLS_ALPN = 'acme-tls/1'

/**
 * TLS-ALPN-01 (RFC 8737) on the shared TLS port. The TLS front peeks at each ClientHello; one that
 * offers ALPN `acme-tls/1` for a name being validated is relayed into a loopback node:tls server that
 * presents that name's challenge certificate and negotiates `acme-tls/1`. Relaying over loopback
 * avoids re-feeding peeked bytes into a TLSSocket in-process, which hangs under Bun
 * (platform notes §1). Other `acme-tls/1` hellos get a close.
 */
export class TlsAlpn01Responder implements Solver {
  readonly #contexts = new Map<string, tls.SecureContext>()
  readonly #log: Logger
  #server: Promise<tls.Server> | undefined

  constructor(log: Logger) {
    this.#log = log
  }

  async present(authz: acme.Authorization, _challenge: unknown, keyAuthorization: string): Promise<void> {
    const [key, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization)
    const context = tls.createSecureContext({ key, cert })
    this.#contexts.set(authz.identifier.value.toLowerCase(), context)
    this.#server ??= this.#start(key.toString(), cert.toString())
    await this.#server
  }

  async cleanup(authz: acme.Authorization): Promise<void> {
    this.#contexts.delete(authz.identifier.value.toLowerCase())
  }

  /** Whether `serverName` is being validated now. */
  has(serverName: string): boolean {
    return this.#contexts.has(serverName.toLowerCase())
  }

  /** The challenge certificate for `serverName` while it is being validated. */
  context(serverName: string): tls.SecureContext | undefined {
    return this.#contexts.get(serverName.toLowerCase())
  }

  /** TlsFront's `acmeTlsAlpn` hook: relay a validator's connection, or close it. */
  handle(socket: Socket<RelayConn>, hello: Uint8Array, serverName: string): void {
    if (!this.has(serverName) || !this.#server) {
      this.#log.info('acme-tls/1 hello for a name not being validated; closed', { server_name: serverName, client_ip: socket.remoteAddress })
      return void socket.end()
    }
    void this.#server.then(async (server) => {
      const port = (server.address() as { port: number }).port
      socket.resume()
      const ok = await relayTo(socket, { hostname: '127.0.0.1', port }, { first: hello, idleTimeoutSec: 30 })
      if (!ok) socket.end()
    })
  }

  stop(): void {
    void this.#server?.then((s) => s.close())
    this.#server = undefined
  }

  async #start(key: string, cert: string): Promise<tls.Server> {
    const server = tls.createServer({
      key,
      cert,
      ALPNProtocols: [ACME_TLS_ALPN],
      SNICallback: (name, cb) => {
        const context = this.#contexts.get(name.toLowerCase())
        if (context) cb(null, context)
        else cb(new Error(`no TLS-ALPN-01 challenge for "${name}"`))
      },
    })
    server.on('secureConnection', (s) => {
      // The validator only needs the handshake; make sure nothing lingers.
      s.setTimeout(10_000, () => s.destroy())
      s.on('error', () => {})
      s.resume()
    })
    server.on('tlsClientError', (err) => this.#log.debug('TLS-ALPN-01 handshake failed', { error: err.message }))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    return server
  }
}
