import { connect as netConnect, type Socket as NetSocket } from 'node:net'
import * as tls from 'node:tls'
import type { CertStore } from '../certs/index.ts'
import { serverNameHost } from './sni.ts'
import type { TunnelTarget } from '../endpoints/endpoint.ts'
import type { Logger } from '../lib/log.ts'
import type { TerminateTlsSettings } from '../policy/actions/terminate-tls.ts'

/** Where the plaintext of a terminated connection goes. */
export type PlainTarget = { kind: 'tcp'; hostname: string; port: number } | { kind: 'tunnel'; tunnel: TunnelTarget }

interface Route {
  target: PlainTarget
  clientAddr: string
  onDone: (stats: { bytesIn: number; bytesOut: number }) => void
  /** Told the local port of the plaintext connection and the handshake (so a server behind it can see the real client). */
  onUpstream?: (localPort: number, handshake: { version: string; cipherSuite: string; alpn: string }) => void
}

/**
 * Terminates TLS for tls:// endpoints whose policy runs `terminate-tls`: one internal node:tls server
 * per distinct settings (versions, certificate, mutual TLS), fed the raw connection by the TLS front;
 * the plaintext is piped to the policy's forward target or to the agent. node:tls is used here because
 * it can check client certificates and pick certificates per SNI asynchronously.
 */
export class TlsTerminator {
  readonly #certs: CertStore
  readonly #log: Logger
  readonly #servers = new WeakMap<TerminateTlsSettings, Promise<tls.Server>>()
  readonly #all = new Set<tls.Server>()
  readonly #sockets = new Set<tls.TLSSocket>()
  /** Front relay's local port → where that connection's plaintext goes. */
  readonly #routes = new Map<number, Route>()

  constructor(certs: CertStore, log: Logger) {
    this.#certs = certs
    this.#log = log
  }

  /** The loopback port of the terminator for these settings (started on first use). */
  async portFor(settings: TerminateTlsSettings): Promise<number> {
    let server = this.#servers.get(settings)
    if (!server) {
      server = this.#start(settings)
      this.#servers.set(settings, server)
    }
    return ((await server).address() as { port: number }).port
  }

  /** Called by the front once its relay into the terminator is connected. */
  expect(localPort: number, route: Route): void {
    this.#routes.set(localPort, route)
  }

  forget(localPort: number): void {
    this.#routes.delete(localPort)
  }

  /** Stops accepting; connections already terminated go on. */
  close(): void {
    for (const s of this.#all) s.close()
    this.#all.clear()
  }

  /** Stops accepting and ends every connection (their plaintext sides close with them). */
  stop(): void {
    this.close()
    for (const socket of this.#sockets) socket.destroy()
  }

  async #start(settings: TerminateTlsSettings): Promise<tls.Server> {
    const mutual = settings.clientCas !== undefined
    const options: tls.TlsOptions = {
      minVersion: settings.minVersion,
      maxVersion: settings.maxVersion,
      ...(settings.cert && settings.key
        ? { cert: settings.cert, key: settings.key }
        : {
            SNICallback: (name: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => {
              this.#certs.ensure(serverNameHost(name)).then(
                // The per-name context must carry the client CAs too: verification uses it, not the server's.
                (pair) =>
                  pair
                    ? cb(null, tls.createSecureContext({ cert: pair.cert, key: pair.key, ...(mutual ? { ca: settings.clientCas } : {}) }))
                    : cb(new Error(`no certificate for ${name}`)),
                (err) => cb(err as Error),
              )
            },
          }),
      ...(mutual
        ? { ca: settings.clientCas, requestCert: true, rejectUnauthorized: settings.verification === 'require-and-verify' }
        : {}),
    }
    const server = tls.createServer(options, (socket) => this.#serve(socket, settings))
    server.on('tlsClientError', (err) => this.#log.info('TLS handshake failed at terminate-tls', { error: err.message }))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    this.#all.add(server)
    return server
  }

  #serve(socket: tls.TLSSocket, settings: TerminateTlsSettings): void {
    this.#sockets.add(socket)
    socket.once('close', () => this.#sockets.delete(socket))
    const route = this.#routes.get(socket.remotePort ?? 0)
    if (!route) return void socket.destroy()
    if (settings.verification === 'require-any' && !socket.getPeerCertificate()?.raw) {
      this.#log.info('terminate-tls: client sent no certificate; closed', { client: route.clientAddr })
      return void socket.destroy()
    }
    let bytesIn = 0
    let bytesOut = 0
    socket.on('data', (d: Buffer) => (bytesIn += d.length))
    const finish = () => route.onDone({ bytesIn, bytesOut })
    if (route.target.kind === 'tcp') {
      const handshake = {
        version: (socket.getProtocol() ?? '').replace(/^TLSv/, ''),
        cipherSuite: socket.getCipher()?.standardName ?? '',
        alpn: typeof socket.alpnProtocol === 'string' ? socket.alpnProtocol : '',
      }
      const upstream: NetSocket = netConnect(route.target.port, route.target.hostname, () => route.onUpstream?.(upstream.localPort ?? 0, handshake))
      upstream.on('data', (d: Buffer) => (bytesOut += d.length))
      socket.pipe(upstream).pipe(socket)
      upstream.on('error', () => socket.destroy())
      socket.on('error', () => upstream.destroy())
      socket.on('close', () => (upstream.destroy(), finish()))
      return
    }
    void route.target.tunnel.connect(route.clientAddr).then((stream) => {
      if (!stream) return void socket.destroy()
      stream.ondata = (chunk) => {
        bytesOut += chunk.length
        if (!socket.write(chunk)) {
          stream.pause()
          socket.once('drain', () => stream.resume())
        }
      }
      stream.onend = () => socket.end()
      stream.onclose = () => socket.destroy()
      let waiting: Buffer | undefined
      const send = (chunk: Buffer) => {
        const n = stream.write(chunk)
        if (n < chunk.length) {
          waiting = chunk.subarray(n)
          socket.pause()
        }
      }
      stream.ondrain = () => {
        const rest = waiting
        waiting = undefined
        if (rest) send(rest)
        if (!waiting) socket.resume()
      }
      socket.on('data', send)
      socket.on('end', () => stream.end())
      socket.on('close', () => (stream.terminate(), finish()))
      socket.on('error', () => stream.terminate())
    })
  }
}
