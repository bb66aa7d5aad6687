import type { Socket, SocketHandler, TCPSocketListener } from 'bun'
import { createSecureContext } from 'node:tls'
import type { CertPair, CertStore } from '../certs/index.ts'
import type { EndpointStore } from '../endpoints/store.ts'
import type { EndpointTable } from '../endpoints/table.ts'
import type { Endpoint } from '../endpoints/endpoint.ts'
import { CODES } from '../lib/errors.ts'
import { log } from '../lib/log.ts'
import { throttledLog } from '../lib/throttled-log.ts'
import { tcpClosedEvent } from '../events/traffic.ts'
import type { EventSink } from '../events/types.ts'
import { runTcpConnect } from '../proxy/connect.ts'
import type { ClientAddress } from '../proxy/pipeline.ts'
import { proxyHeader } from '../proxy/proxy-protocol.ts'
import { relayToTunnel } from '../proxy/tunnel-relay.ts'
import { clientRelayHandlers, newRelayConn, relayClientData, relayTo, type RelayConn, type RelayStats } from '../proxy/tcp-relay.ts'
import type { RequestSource } from '../proxy/websocket.ts'
import { createHttpEngine, listenH2, listenHttp, type HttpEngine, type HttpListenerOptions, type HttpServer } from './http.ts'
import { TlsTerminator, type PlainTarget } from './tls-terminator.ts'
import { TERMINATE_TLS, terminatesTls, type TerminateTlsSettings } from '../policy/actions/terminate-tls.ts'
import { PendingGate, type PendingLimits } from './pending-gate.ts'
import { peekClientHello, type PeekResult } from './sni.ts'
import { ja4Fingerprint, ServerHelloWatcher } from './tls-handshake.ts'
import type { TlsInfo } from '../policy/types.ts'
import type { Http1Connection } from '../http1/connection.ts'

/** TLS alert record: fatal unrecognized_name (RFC 6066), sent when no endpoint serves the SNI. */
const ALERT_UNRECOGNIZED_NAME = new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70])
/** TLS alert record: fatal handshake_failure, for garbage or oversized hellos. */
const ALERT_HANDSHAKE_FAILURE = new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])
const EMPTY = new Uint8Array(0)
/** ALPN offered by connections terminated on the front socket (wire format); see ALPN_WITH_ACME. */
const ALPN_INLINE = Buffer.from('\x02h2\x08http/1.1', 'latin1')
/** The same with `acme-tls/1` last: only an ACME validator offers it, and then alone (RFC 8737). */
const ALPN_WITH_ACME = Buffer.from('\x02h2\x08http/1.1\x0aacme-tls/1', 'latin1')
/** ALPN the front asks of the internal HTTP/2 server when it relays an h2 connection it terminated. */
const ALPN_H2 = Buffer.from('\x02h2', 'latin1')
/** terminate-tls settings with nothing set: certificates by SNI, TLS 1.2 and 1.3. */
const ANY_TLS_VERSION: TerminateTlsSettings = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' }

/** An internal server terminated connections are relayed into, with the relays using it. */
interface Internal {
  port: number
  inUse: number
  /** Replaced (new certificates): stops once its last relay ends. */
  retired: boolean
  /** Set for the engine's listeners: they stop after IDLE_LISTENER_MS without a relay (see there). */
  onIdle?: () => void
  idle?: ReturnType<typeof setTimeout>
  stop(force: boolean): unknown
}

/**
 * An engine listener without connections for this long stops (it starts again on the next
 * connection for its certificate, in about a millisecond): each one holds a socket, and names under a
 * wildcard endpoint get a certificate each in dev and on-demand ACME mode, so without this a stream
 * of new names would end in the file-descriptor limit.
 */
const IDLE_LISTENER_MS = 30_000

/**
 * `conn.tls.*` for a connection relayed into the internal HTTPS server: SNI and the offered ALPN now,
 * version and cipher once the ServerHello passes; JA4 computed only if a policy reads it. The
 * server prefers h2 when offered (TLS 1.3 encrypts its choice; TLS 1.2's ServerHello corrects it).
 */
function handshakeInfo(hello: Uint8Array, sni: string, offered: readonly string[]): TlsInfo {
  let ja4: string | undefined
  return {
    version: '',
    cipherSuite: '',
    sni,
    alpn: offered.includes('h2') ? 'h2' : offered.includes('http/1.1') ? 'http/1.1' : '',
    get ja4() {
      return (ja4 ??= ja4Fingerprint(hello) ?? '')
    },
  }
}

/** A secure context as Bun's `serverName` handler takes it (node:tls `createSecureContext().context`). */
type NativeContext = ReturnType<typeof createSecureContext>['context']

/** A server name as the peek and BoringSSL's SNI callback both can give it: lower case, no `:port`. */
function sniKey(name: string): string {
  return name.toLowerCase().replace(/:\d*$/, '')
}

/** The TLS side of a connection terminated on the front socket (see TlsFront's comment). */
interface Inline {
  /** The raw side (what the listener's handlers get): closing it closes the connection. */
  raw: Socket<FrontConn>
  /** Set once the ClientHello routed it to an https:// endpoint. */
  client: (ClientAddress & { tls: TlsInfo }) | undefined
  /** Undefined while the endpoint's on_tcp_connect runs; then whether the connection goes on. */
  admitted: boolean | undefined
  /** The TLS socket, once the handshake succeeded. */
  socket: Socket<FrontConn> | undefined
  /** The engine's connection; until it (or the h2 relay) takes over, decrypted bytes wait in `early`. */
  engine: Http1Connection | undefined
  /** Bytes from the client after decryption (`bytesWritten` of the TLS socket counts the other way). */
  bytesIn: number
  startedAt: number
  /** The ClientHello asked for acme-tls/1 and got the challenge certificate: nothing more to serve. */
  acme: boolean
}

interface FrontConn extends RelayConn {
  /** The ClientHello bytes so far: `helloBytes` of `hello`, which grows by doubling. */
  hello: Uint8Array
  helloBytes: number
  /** The address this connection counts under while it waits for its ClientHello. */
  pendingIp: string | undefined
  timer: ReturnType<typeof setTimeout> | undefined
  routed: boolean
  /** Publishes `tcp_connection_closed.v0` once a relay for this connection ends (set when routed). */
  report: ((stats: RelayStats) => void) | undefined
  /** Set when TLS is terminated on this socket itself (upgraded in `open()`). */
  inline: Inline | undefined
}

export interface TlsFrontOptions {
  hostname: string
  port: number
  /** SO_REUSEPORT: the worker processes of `warren serve --workers` listen on the same port. */
  reusePort?: boolean
  /** Port a URL without one matches (public_ports.https, else this listener's). */
  defaultPort: number
  store: EndpointStore
  certs: CertStore
  helloTimeoutMs: number
  /** Caps on connections still waiting for their ClientHello (`tls.max_pending`, `tls.max_pending_per_ip`). */
  pending: PendingLimits
  idleTimeoutSec: number
  /** Options for the internal HTTPS server that terminated connections are handed to. */
  http: Omit<HttpListenerOptions, 'hostname' | 'port' | 'tls' | 'scheme' | 'defaultPort' | 'store' | 'clientAddress' | 'connectionClient'>
  /** Answers ACME TLS-ALPN-01 connections (ALPN `acme-tls/1`) when set. */
  acmeTlsAlpn?: (socket: Socket<RelayConn>, hello: Uint8Array, serverName: string) => void
  /**
   * The TLS-ALPN-01 challenge certificate for a name being validated, known at once: lets the port
   * answer validators on connections it terminates itself. Unset while `acmeTlsAlpn` is set (an
   * answer that may have to be fetched from a share), every connection takes the relay path.
   */
  acmeTlsAlpnContext?: (serverName: string) => NativeContext | undefined
  /** Receives one `tcp_connection_closed.v0` per relayed connection (passthrough or terminated). */
  events?: EventSink
  /** How long an HTTP/1.1 engine listener with no connection lives on (IDLE_LISTENER_MS; tests shorten it). */
  listenerIdleMs?: number
}

/**
 * The one TLS port, a plain TCP listener that reads each ClientHello and picks the endpoint by SNI.
 * Two ways to serve a connection, chosen in `open()` before any byte is read:
 *
 * - Inline (the usual case): `open()` calls `upgradeTLS`, so TLS is terminated on this socket. Bun hands
 *   every raw chunk to the plain `data` handler before BoringSSL reads it (bun-usockets openssl.c,
 *   `ssl_wrapped_context_on_data`), so the ClientHello is still peeked first: SNI, ALPN, JA4, refusals
 *   (an alert written raw, then the socket closed, and BoringSSL never answers). The `serverName`
 *   handler then gives the certificate picked for the SNI. HTTP/1.1 runs warren's engine on the TLS
 *   socket; h2 is relayed, decrypted, into the internal Bun.serve (HTTP/2) over a loopback TLS connection.
 * - Relay: nothing can stop BoringSSL from answering a hello once it is upgraded, so a port that may
 *   need the untouched bytes (a tls:// endpoint to pass through, a terminate-tls policy, an ACME
 *   validation answered elsewhere, a name without a certificate ready) does not upgrade: the bytes go
 *   to the upstream (passthrough) or into an in-process server that terminates TLS, warren's engine on
 *   a TLS `Bun.listen` per certificate, or for h2 the internal Bun.serve holding every certificate.
 *   Certificates change by starting new internal servers, so nothing established is dropped (Bun's
 *   server.reload ignores `tls`).
 */
export class TlsFront {
  readonly #o: TlsFrontOptions
  readonly #log = log.child({ component: 'tls' })
  /** For what any client can repeat at will (timeouts, garbage, refusals): one line per code per 10 s. */
  readonly #limitLog = throttledLog(this.#log)
  readonly #pending: PendingGate
  #listener: TCPSocketListener<FrontConn> | undefined
  /** The HTTP/2 server holding the current certificates. */
  #h2: Internal | undefined
  /** The HTTP/1.1 engine's TLS listeners, by the certificate each holds. */
  readonly #h1 = new Map<CertPair, Internal>()
  /** Every internal TLS server still running (current ones and replaced ones still relayed into). */
  readonly #internals = new Set<Internal>()
  #rebuilding: Promise<void> | undefined
  readonly #terminator: TlsTerminator
  #plain: Promise<PlainTarget> | undefined
  /** The plaintext https:// server behind terminate-tls and `name:port` SNIs, once started. */
  #plainServer: HttpServer | undefined
  #closing = false
  /** The certificates the current HTTP/2 server holds. */
  #served = new Set<CertPair>()
  /** Internal connection's local port → the real client (and its TLS handshake), so logs and policies see them. */
  readonly #clients = new Map<number, ClientAddress>()
  #active = 0
  /** The endpoint table `#inlineOk` was worked out for (undefined: certificates changed since). */
  #inlineTable: EndpointTable | undefined
  #inlineOk = false
  /** The HTTP/1.1 engine for connections terminated on the front socket, once the first one came. */
  #engine: HttpEngine | undefined
  /** Client and handshake of each inline engine connection. */
  readonly #inlineClients = new WeakMap<Http1Connection, ClientAddress>()
  /** Secure contexts by certificate, for the `serverName` handler (a replaced certificate is a new pair). */
  readonly #contexts = new WeakMap<CertPair, NativeContext>()
  /**
   * The context for the ClientHello being read now: set by the raw `data` handler, taken by `serverName`,
   * which BoringSSL calls synchronously while it reads that same chunk.
   */
  #picked: { name: string; context: NativeContext } | undefined
  #inlineTls: { ALPNProtocols: Buffer } | undefined
  #inlineHandlers: SocketHandler<FrontConn> | undefined
  /** Upgraded connections still open: the listener's stop() does not reach them (they left its socket context). */
  readonly #upgraded = new Set<FrontConn>()

  constructor(options: TlsFrontOptions) {
    this.#o = options
    this.#pending = new PendingGate(options.pending)
    this.#terminator = new TlsTerminator(options.certs, this.#log)
  }

  /** The HTTP/1.1 engine's TLS listeners running now, one per certificate in use. */
  get engineListeners(): number {
    return this.#h1.size
  }

  /** Connections accepted since start, by path (metrics): terminated on the accepted socket, or relayed. */
  readonly accepted = { inline: 0, relay: 0 }

  /** Client connections open right now on the TLS port (metrics). */
  get activeConnections(): number {
    return this.#active
  }

  get port(): number {
    return this.#listener?.port ?? this.#o.port
  }

  async start(): Promise<void> {
    await this.#rebuild()
    this.#o.certs.onChange(() => {
      this.#inlineTable = undefined
      void this.#rebuild()
      this.#retireUnservedH1()
    })
    const front = this
    this.#inlineTls = { ALPNProtocols: this.#o.acmeTlsAlpnContext ? ALPN_WITH_ACME : ALPN_INLINE }
    this.#inlineHandlers = this.#tlsSideHandlers()
    this.#listener = Bun.listen<FrontConn>({
      hostname: this.#o.hostname,
      port: this.#o.port,
      ...(this.#o.reusePort ? { reusePort: true } : {}),
      socket: {
        ...clientRelayHandlers,
        open(socket) {
          front.#active++
          const ip = socket.remoteAddress
          socket.data = { ...newRelayConn(), hello: EMPTY, helloBytes: 0, pendingIp: undefined, timer: undefined, routed: false, report: undefined, inline: undefined }
          if (!front.#pending.admit(ip)) {
            front.#limitLog('warn', 'too many connections waiting for their ClientHello; refused', { client_ip: ip, code: CODES.TLS_PENDING_LIMIT, pending: front.#pending.pending })
            return void socket.terminate()
          }
          socket.data.pendingIp = ip
          socket.timeout(front.#o.idleTimeoutSec)
          // Upgrading invalidates `socket`: its raw side is a new object.
          const inline = front.#canInline()
          front.accepted[inline ? 'inline' : 'relay']++
          const raw = inline ? front.#upgrade(socket) : socket
          socket.data.timer = setTimeout(() => {
            front.#limitLog('info', 'ClientHello timeout; connection closed', { client_ip: ip, code: CODES.TLS_HELLO_TIMEOUT })
            raw.terminate()
          }, front.#o.helloTimeoutMs)
        },
        data(socket, chunk) {
          if (!socket.data.routed) front.#onHelloBytes(socket, chunk)
          // An upgraded socket's raw side keeps seeing every chunk: its TLS side serves them.
          else if (!socket.data.inline) relayClientData(socket, chunk)
        },
        close(socket) {
          front.#active--
          front.#upgraded.delete(socket.data)
          clearTimeout(socket.data.timer)
          front.#settled(socket.data)
          clientRelayHandlers.close(socket)
        },
        timeout: (socket) => void socket.end(),
        error: () => {},
      },
    })
  }

  /**
   * Shutdown, first step: the port and the internal servers stop accepting; requests in flight finish,
   * idle keep-alive connections are closed (Bun's stop), so the relays in front of them end too.
   */
  stopAccepting(): void {
    this.#closing = true
    this.#listener?.stop(false)
    void this.#engine?.stop(false)
    for (const server of this.#internalServers()) void server.stop(false)
    this.#terminator.close()
  }

  /** Closes the port, the internal servers and every connection. */
  stop(): void {
    this.#closing = true
    this.#terminator.stop()
    this.#listener?.stop(true)
    for (const st of this.#upgraded) st.inline!.raw.terminate()
    for (const server of this.#internalServers()) void server.stop(true)
  }

  /** Every internal server still running: the TLS ones (current, and replaced ones still in use), the plaintext one. */
  #internalServers(): { stop(force: boolean): unknown }[] {
    return this.#plainServer ? [...this.#internals, this.#plainServer] : [...this.#internals]
  }

  /** The connection no longer waits for its ClientHello (it arrived, or the connection closed). */
  #settled(st: FrontConn): void {
    if (st.pendingIp !== undefined) this.#pending.release(st.pendingIp)
    st.pendingIp = undefined
  }

  #onHelloBytes(socket: Socket<FrontConn>, chunk: Uint8Array): void {
    const st = socket.data
    // Grown by doubling, not joined per chunk: a hello sent a byte at a time costs linear time, not quadratic.
    const size = st.helloBytes + chunk.length
    if (size > st.hello.length) {
      const grown = new Uint8Array(Math.max(size, 2 * st.hello.length, 2048))
      grown.set(st.hello.subarray(0, st.helloBytes))
      st.hello = grown
    }
    st.hello.set(chunk, st.helloBytes)
    st.helloBytes = size
    const buf = st.hello.subarray(0, size)
    const peek = peekClientHello(buf)
    if (peek.kind === 'need-more') return
    clearTimeout(st.timer)
    this.#settled(st)
    st.routed = true
    // An upgraded socket cannot pause (Bun ignores it on a wrapped socket), and needs no pause: it decides now.
    if (!st.inline) socket.pause()
    if (peek.kind !== 'hello') {
      this.#limitLog('info', peek.kind === 'invalid' ? 'malformed TLS ClientHello; connection closed' : 'not a TLS ClientHello; connection closed', { client_ip: socket.remoteAddress, code: CODES.TLS_BAD_HELLO, reason: peek.kind === 'invalid' ? peek.reason : 'not-tls' })
      return this.#refuse(socket, peek.kind === 'invalid' ? ALERT_HANDSHAKE_FAILURE : undefined)
    }
    if (st.inline) return this.#routeInline(socket, st.inline, buf, peek)
    void this.#route(socket, buf, peek).catch((err) => {
      this.#log.error('TLS routing failed', { error: String(err), code: CODES.INTERNAL })
      socket.terminate()
    })
  }

  /** Closes a connection whose ClientHello is refused, after `alert` when given. */
  #refuse(socket: Socket<FrontConn>, alert?: Uint8Array): void {
    if (!socket.data.inline) return void socket.end(alert)
    // Upgraded: the raw side writes past TLS, and closing now keeps BoringSSL from reading the hello.
    if (alert) socket.write(alert)
    socket.terminate()
  }

  /**
   * Whether a new connection may be terminated on the front socket: only while no ClientHello on this
   * port can need its bytes untouched (see the class comment). Worked out again after the endpoint
   * table or the certificates changed, not per connection.
   */
  #canInline(): boolean {
    const table = this.#o.store.current
    if (table !== this.#inlineTable) {
      this.#inlineTable = table
      this.#inlineOk = this.#inlineFits(table)
    }
    return this.#inlineOk && !this.#closing
  }

  #inlineFits(table: EndpointTable): boolean {
    if (this.#o.acmeTlsAlpn && !this.#o.acmeTlsAlpnContext) return false
    let fits = true
    for (const ep of table.endpoints) {
      if (ep.port !== this.#o.defaultPort || ep.url.binding !== 'public') continue
      if (ep.url.scheme === 'tls') return false
      if (ep.url.scheme !== 'https') continue
      if (terminatesTls(ep.policy)) return false
      // The certificate must be there when the hello is read. A name still without one is served through
      // the relay until it has one (dev mode issues it now; the change brings this check back), and so is
      // a wildcard unless one certificate covers it (dev mode and on-demand ACME issue one per name).
      if (this.#o.certs.ready(ep.url.host)) continue
      fits = false
      if (!ep.url.wildcard) this.#o.certs.warm(ep.url.host)
    }
    return fits
  }

  /** Terminates TLS on this socket from now on; returns its raw side, which replaces `socket`. */
  #upgrade(socket: Socket<FrontConn>): Socket<FrontConn> {
    const st = socket.data
    // Both sides share `data`: the raw one peeks at the hello, the TLS one serves the connection.
    const [raw] = socket.upgradeTLS({ tls: this.#inlineTls!, socket: this.#inlineHandlers!, data: st })
    st.inline = { raw, client: undefined, admitted: undefined, socket: undefined, engine: undefined, bytesIn: 0, startedAt: Date.now(), acme: false }
    this.#upgraded.add(st)
    return raw
  }

  /** The context `serverName` returns for `pair`, made once per certificate. */
  #contextFor(pair: CertPair): NativeContext {
    let context = this.#contexts.get(pair)
    if (!context) this.#contexts.set(pair, (context = createSecureContext({ cert: pair.cert, key: pair.key }).context))
    return context
  }

  /**
   * An upgraded connection's ClientHello, read before BoringSSL reads it (synchronously after this returns):
   * refuse it, or pick its certificate and start its on_tcp_connect.
   */
  #routeInline(socket: Socket<FrontConn>, inline: Inline, hello: Uint8Array, peek: Extract<PeekResult, { kind: 'hello' }>): void {
    const { serverName, alpn } = peek
    const client = { address: socket.remoteAddress, port: socket.remotePort ?? 0 }
    if (this.#closing) return this.#refuse(socket)
    if (!serverName) {
      this.#limitLog('info', 'ClientHello without SNI; refused', { client_ip: client.address, code: CODES.TLS_NO_SNI })
      return this.#refuse(socket, ALERT_UNRECOGNIZED_NAME)
    }
    if (alpn.includes('acme-tls/1')) {
      const context = this.#o.acmeTlsAlpnContext?.(serverName)
      if (!context) {
        this.#limitLog('info', 'acme-tls/1 hello for a name not being validated; closed', { server_name: serverName, client_ip: client.address })
        return this.#refuse(socket)
      }
      // The validator only needs the handshake (RFC 8737 §3); the idle timeout ends what it leaves open.
      inline.acme = true
      this.#picked = { name: sniKey(serverName), context }
      return
    }
    const key = { account: '', binding: 'public' as const, host: serverName, port: this.#o.defaultPort, scheme: 'https' as const }
    // An HTTPS connection's requests pick their member themselves: the front only looks.
    const endpoint = this.#o.store.current.lookup(key)?.peek()
    if (!endpoint) {
      // Also a tls:// endpoint added after this connection opened: its bytes are no longer untouched.
      this.#limitLog('info', 'no endpoint for SNI; refused', { server_name: serverName, client_ip: client.address, code: CODES.ENDPOINT_NOT_FOUND })
      return this.#refuse(socket, ALERT_UNRECOGNIZED_NAME)
    }
    const ready = this.#o.certs.ready(serverName)
    // Not ready: issued or renewed for later connections, which take the relay path meanwhile.
    if (!ready) {
      this.#inlineTable = undefined
      void this.#o.certs.ensure(serverName)
    }
    const pair = ready ?? this.#o.certs.select(serverName)
    if (!pair) {
      this.#log.warn('no certificate for SNI; refused', { server_name: serverName, code: CODES.TLS_NO_CERTIFICATE })
      return this.#refuse(socket, ALERT_UNRECOGNIZED_NAME)
    }
    this.#picked = { name: sniKey(serverName), context: this.#contextFor(pair) }
    inline.client = { ...client, tls: handshakeInfo(hello, serverName, alpn), connected: endpoint }
    const conn = { clientIp: client.address, clientPort: client.port, serverIp: this.#o.hostname, serverPort: this.port, startedAt: Date.now() }
    const st = socket.data
    runTcpConnect(endpoint, conn).then(
      ({ outcome, exchange }) => {
        const events = this.#o.events
        if (events) st.report = (stats) => events.emit(tcpClosedEvent({ protocol: 'https', endpoint, conn, serverName, stats, logMetadata: exchange.logMetadata }))
        inline.admitted = outcome.kind === 'continue' && !this.#closing
        this.#serveInline(st)
      },
      (err) => {
        this.#log.error('TLS routing failed', { error: String(err), code: CODES.INTERNAL })
        inline.admitted = false
        this.#serveInline(st)
      },
    )
  }

  /** The TLS side's handlers of upgraded connections (one object for all: Bun copies them per socket). */
  #tlsSideHandlers(): SocketHandler<FrontConn> {
    const front = this
    const handlers: SocketHandler<FrontConn> & { serverName(listener: unknown, name: string): NativeContext | undefined } = {
      handshake(socket, ok) {
        const inline = socket.data.inline!
        // A failed handshake: BoringSSL already sent its alert.
        if (!ok) return void socket.terminate()
        if (inline.acme) return
        const tls = inline.client!.tls
        tls.version = socket.getTLSVersion()?.replace('TLSv', '') ?? ''
        tls.cipherSuite = (socket.getCipher() as { standardName?: string } | undefined)?.standardName ?? ''
        tls.alpn = typeof socket.alpnProtocol === 'string' ? socket.alpnProtocol : ''
        inline.socket = socket
        front.#serveInline(socket.data)
      },
      data(socket, chunk) {
        const inline = socket.data.inline!
        inline.bytesIn += chunk.length
        if (inline.engine) front.#engine!.data(inline.engine, chunk, socket)
        else if (!inline.acme) relayClientData(socket, chunk)
      },
      drain(socket) {
        const inline = socket.data.inline!
        if (inline.engine) inline.engine.drain()
        else socket.data.relay?.clientDrained()
      },
      end(socket) {
        socket.data.relay?.clientEnded()
      },
      close(socket) {
        const st = socket.data
        const inline = st.inline!
        if (inline.engine) front.#engine!.closed(inline.engine)
        // A relayed (h2) connection reports when its relay ends.
        if (!st.relay) st.report?.({ bytesIn: inline.bytesIn, bytesOut: socket.bytesWritten, startedAt: inline.startedAt, endedAt: Date.now() })
      },
      error() {},
      serverName(_listener, name) {
        const picked = front.#picked
        front.#picked = undefined
        // Always the hello the raw side just routed; checked anyway: no context fails the handshake, the wrong one would not.
        return picked && picked.name === sniKey(name) ? picked.context : undefined
      },
    }
    return handlers
  }

  /** Starts serving an upgraded connection once on_tcp_connect let it through and its handshake is done. */
  #serveInline(st: FrontConn): void {
    const inline = st.inline!
    const socket = inline.socket
    if (inline.admitted === undefined || !socket || inline.engine || st.closed) return
    if (!inline.admitted) return void socket.terminate()
    // Shutting down: the engine no longer takes connections (as on the relay path, a new one is closed).
    if (this.#closing) return void socket.end()
    const client = inline.client!
    if (client.tls.alpn === 'h2') return void this.#relayH2(socket, client)
    const engine = (this.#engine ??= createHttpEngine({
      ...this.#internalOptions(),
      clientAddress: (req, source) => this.#inlineClients.get(source as Http1Connection) ?? source.requestIP(req),
      connectionClient: (conn) => this.#inlineClients.get(conn) ?? null,
    }))
    const conn = engine.accept(socket)
    if (!conn) return
    this.#inlineClients.set(conn, client)
    inline.engine = conn
    // What came between the handshake and now (relayClientData kept it, pausing past its bound).
    const early = st.early
    const paused = st.earlyBytes > 0
    st.early = []
    st.earlyBytes = 0
    for (const chunk of early) engine.data(conn, chunk as Buffer, socket)
    if (paused) socket.resume()
  }

  /**
   * h2 on an upgraded connection: the decrypted bytes go to the internal HTTP/2 server over a loopback
   * TLS connection (HTTP/1.1 is the engine's, which has no h2).
   */
  async #relayH2(socket: Socket<FrontConn>, client: ClientAddress & { tls: TlsInfo }): Promise<void> {
    const pair = this.#o.certs.select(client.tls.sni)
    if (pair && !this.#served.has(pair)) await this.#rebuild()
    await this.#rebuilding
    const internal = this.#h2
    if (!internal || this.#closing) return void socket.terminate()
    internal.inUse++
    let localPort = 0
    const ok = await relayTo(socket, { hostname: '127.0.0.1', port: internal.port }, {
      tls: { serverName: client.tls.sni, ALPNProtocols: ALPN_H2 },
      idleTimeoutSec: this.#o.idleTimeoutSec,
      onOpen: (upstream) => this.#clients.set((localPort = upstream.localPort), client),
      onDone: (stats) => {
        this.#clients.delete(localPort)
        this.#release(internal)
        socket.data.report?.(stats)
      },
    })
    if (!ok) {
      this.#release(internal)
      socket.terminate()
    }
  }

  /** A relay into `internal` ended: a replaced server stops after its last one, an idle engine listener later. */
  #release(internal: Internal): void {
    internal.inUse--
    if (internal.inUse > 0) return
    if (internal.retired) this.#stopInternal(internal)
    else internal.onIdle?.()
  }

  async #route(socket: Socket<FrontConn>, hello: Uint8Array, peek: Extract<PeekResult, { kind: 'hello' }>): Promise<void> {
    // Shutting down: the internal servers no longer accept, so a connection still in its hello is closed.
    if (this.#closing) return void socket.end()
    const { serverName, alpn } = peek
    const client = { address: socket.remoteAddress, port: socket.remotePort ?? 0 }
    if (!serverName) {
      this.#limitLog('info', 'ClientHello without SNI; refused', { client_ip: client.address, code: CODES.TLS_NO_SNI })
      return void socket.end(ALERT_UNRECOGNIZED_NAME)
    }
    if (alpn.includes('acme-tls/1') && this.#o.acmeTlsAlpn) return this.#o.acmeTlsAlpn(socket, hello, serverName)
    const table = this.#o.store.current
    const key = { account: '', binding: 'public' as const, host: serverName, port: this.#o.defaultPort }
    const https = table.lookup({ ...key, scheme: 'https' })
    const tls = https ? undefined : table.lookup({ ...key, scheme: 'tls' })
    // An HTTPS connection's requests pick their member themselves: the front only looks (picking here too
    // moved a two-member pool on by two per connection, so every first request went to one member).
    const endpoint = https ? https.peek() : tls?.pick()
    if (!endpoint) {
      this.#limitLog('info', 'no endpoint for SNI; refused', { server_name: serverName, client_ip: client.address, code: CODES.ENDPOINT_NOT_FOUND })
      return void socket.end(ALERT_UNRECOGNIZED_NAME)
    }
    const conn = { clientIp: client.address, clientPort: client.port, serverIp: this.#o.hostname, serverPort: this.port, startedAt: Date.now() }
    const { outcome, exchange } = await runTcpConnect(endpoint, conn)
    if (this.#closing) return void socket.end()
    const events = this.#o.events
    if (events) {
      const protocol = https ? 'https' : 'tls'
      socket.data.report = (stats) => events.emit(tcpClosedEvent({ protocol, endpoint, conn, serverName, stats, logMetadata: exchange.logMetadata }))
    }
    const settings = exchange.actions[TERMINATE_TLS] as TerminateTlsSettings | undefined
    if (https) {
      if (outcome.kind !== 'continue') return void socket.end()
      const withTls = { ...client, tls: handshakeInfo(hello, serverName, peek.alpn), connected: endpoint }
      if (settings) return this.#terminateWith(socket, hello, settings, endpoint, withTls, await this.#plainHttps())
      // The internal server picks certificates by the raw SNI, which `name:port` would miss.
      if (peek.portInServerName) return this.#terminateWith(socket, hello, ANY_TLS_VERSION, endpoint, withTls, await this.#plainHttps())
      return this.#terminate(socket, hello, serverName, endpoint, withTls, alpn.includes('h2'))
    }
    if (settings && (outcome.kind === 'forward' || (outcome.kind === 'continue' && endpoint.tunnel))) {
      const target: PlainTarget =
        outcome.kind === 'forward'
          ? { kind: 'tcp', hostname: outcome.target.url.hostname, port: Number(outcome.target.url.port) }
          : { kind: 'tunnel', tunnel: endpoint.tunnel! }
      return this.#terminateWith(socket, hello, settings, endpoint, { ...client, tls: handshakeInfo(hello, serverName, peek.alpn) }, target)
    }
    if (outcome.kind === 'continue' && endpoint.tunnel) {
      // tls:// agent endpoint: the agent (or its upstream) terminates; we pass the bytes through.
      socket.resume()
      const ok = await relayToTunnel(socket, endpoint.tunnel, {
        addresses: conn,
        first: hello,
        onDone: (stats) => {
          this.#log.info('connection closed', { endpoint: endpoint.urlText, client_ip: client.address, bytes_in: stats.bytesIn, bytes_out: stats.bytesOut, duration_ms: stats.endedAt - stats.startedAt })
          socket.data.report?.(stats)
        },
      })
      if (!ok) {
        this.#log.warn('agent unavailable', { endpoint: endpoint.urlText, code: CODES.ENDPOINT_NOT_FOUND })
        socket.end()
      }
      return
    }
    if (outcome.kind !== 'forward') {
      this.#log.info('connection closed by policy', { endpoint: endpoint.urlText, client_ip: client.address })
      return void socket.end()
    }
    const target = outcome.target.url
    const header = proxyHeader(outcome.target.kind === 'external' ? (outcome.target.proxyProtocol ?? 0) : 0, conn)
    const first = header ? Buffer.concat([header, hello]) : hello
    await this.#relay(socket, first, { hostname: target.hostname, port: Number(target.port) }, endpoint, client)
  }

  /** terminate-tls: the policy's own TLS settings, via a node:tls terminator, then plaintext to `target`. */
  async #terminateWith(
    socket: Socket<FrontConn>,
    hello: Uint8Array,
    settings: TerminateTlsSettings,
    endpoint: Endpoint,
    client: ClientAddress & { tls: TlsInfo },
    target: PlainTarget,
  ): Promise<void> {
    const port = await this.#terminator.portFor(settings)
    let localPort = 0
    let plainPort = 0
    socket.resume()
    const ok = await relayTo(socket, { hostname: '127.0.0.1', port }, {
      first: hello,
      idleTimeoutSec: this.#o.idleTimeoutSec,
      onOpen: (upstream) => {
        localPort = upstream.localPort
        this.#terminator.expect(localPort, {
          target,
          clientAddr: `${client.address}:${client.port}`,
          onUpstream: (port, handshake) => this.#clients.set((plainPort = port), { ...client, tls: Object.assign(client.tls, handshake) }),
          onDone: (stats) => {
            this.#clients.delete(plainPort)
            this.#log.info('connection closed', { endpoint: endpoint.urlText, client_ip: client.address, bytes_in: stats.bytesIn, bytes_out: stats.bytesOut, terminated: true })
          },
        })
      },
      onDone: (stats) => {
        this.#terminator.forget(localPort)
        socket.data.report?.(stats)
      },
    })
    if (!ok) socket.end()
  }

  /** A plaintext server with the https:// data path, behind terminate-tls on https:// endpoints. */
  #plainHttps(): Promise<PlainTarget> {
    this.#plain ??= Promise.resolve().then(() => {
      const server = (this.#plainServer = listenHttp(this.#internalOptions()))
      return { kind: 'tcp', hostname: '127.0.0.1', port: server.port! } as const
    })
    return this.#plain
  }

  async #terminate(socket: Socket<FrontConn>, hello: Uint8Array, serverName: string, endpoint: Endpoint, client: ClientAddress & { tls: TlsInfo }, h2: boolean): Promise<void> {
    // ensure() is cheap for a fresh certificate and renews expiring dev ones.
    const pair = await this.#o.certs.ensure(serverName)
    if (!pair) {
      this.#log.warn('no certificate for SNI; refused', { server_name: serverName, code: CODES.TLS_NO_CERTIFICATE })
      return void socket.end(ALERT_UNRECOGNIZED_NAME)
    }
    let internal: Internal | undefined
    if (h2) {
      if (!this.#served.has(pair)) await this.#rebuild()
      await this.#rebuilding
      internal = this.#h2
    } else internal = this.#closing ? undefined : this.#h1For(pair)
    if (!internal) return void socket.end(ALERT_UNRECOGNIZED_NAME)
    // A replaced server lives until its last relay ends (Bun's stop() would also end idle keep-alive connections).
    internal.inUse++
    clearTimeout(internal.idle)
    const tls = client.tls
    const watcher = new ServerHelloWatcher((facts) => {
      if (!facts) return
      tls.version = facts.version
      tls.cipherSuite = facts.cipherSuite
      if (facts.alpn !== undefined) tls.alpn = facts.alpn
    })
    await this.#relay(socket, hello, { hostname: '127.0.0.1', port: internal.port }, endpoint, client, () => this.#release(internal), (chunk) => watcher.feed(chunk))
  }

  /** The HTTP/1.1 engine's TLS listener for `pair`, started on first use. */
  #h1For(pair: CertPair): Internal {
    const known = this.#h1.get(pair)
    if (known) return known
    const server = listenHttp({ ...this.#internalOptions(), tls: { cert: pair.cert, key: pair.key } })
    const internal: Internal = {
      port: server.port,
      inUse: 0,
      retired: false,
      onIdle: () => {
        internal.idle = setTimeout(() => {
          if (internal.inUse > 0 || this.#h1.get(pair) !== internal) return
          this.#h1.delete(pair)
          this.#stopInternal(internal)
        }, this.#o.listenerIdleMs ?? IDLE_LISTENER_MS)
        internal.idle.unref()
      },
      stop: (force) => server.stop(force),
    }
    this.#h1.set(pair, internal)
    this.#internals.add(internal)
    this.#log.debug('internal https/1.1 listener ready', { names: pair.names.length })
    return internal
  }

  /** Listeners for certificates the store no longer holds (renewed, removed) take no new connections. */
  #retireUnservedH1(): void {
    const held = new Set(this.#o.certs.all())
    for (const [pair, internal] of this.#h1) {
      if (held.has(pair)) continue
      this.#h1.delete(pair)
      this.#retire(internal)
    }
  }

  #retire(internal: Internal): void {
    internal.retired = true
    if (internal.inUse === 0) this.#stopInternal(internal)
  }

  #stopInternal(internal: Internal): void {
    clearTimeout(internal.idle)
    this.#internals.delete(internal)
    void internal.stop(true)
  }

  /** What every internal server behind the front is started with (they serve the public https port). */
  #internalOptions() {
    return {
      ...this.#o.http,
      hostname: '127.0.0.1',
      port: 0,
      scheme: 'https' as const,
      defaultPort: this.#o.defaultPort,
      store: this.#o.store,
      serverIp: this.#o.hostname,
      serverPort: this.port,
      clientAddress: (req: Request, server: RequestSource) => this.#clientOf(server.requestIP(req)),
      connectionClient: (conn: Http1Connection) => this.#clientOf(conn.requestIP()),
    }
  }

  /** The real client behind an internal connection from `local` (the relay's end), else `local`. */
  #clientOf(local: { address: string; port: number } | null): ClientAddress | null {
    return (local && this.#clients.get(local.port)) ?? local
  }

  async #relay(
    socket: Socket<FrontConn>,
    hello: Uint8Array,
    target: { hostname: string; port: number },
    endpoint: Endpoint,
    client: ClientAddress,
    /** Set when relaying into the internal HTTPS server; called when the relay ends. */
    internalDone?: () => void,
    watchUpstream?: (chunk: Uint8Array) => boolean,
  ): Promise<void> {
    const internal = internalDone !== undefined
    let localPort = 0
    socket.resume()
    const ok = await relayTo(socket, target, {
      first: hello,
      idleTimeoutSec: this.#o.idleTimeoutSec,
      ...(watchUpstream ? { watchUpstream } : {}),
      onOpen: (upstream) => {
        localPort = upstream.localPort
        if (internal) this.#clients.set(localPort, client)
      },
      onDone: (stats) => {
        if (internalDone) {
          this.#clients.delete(localPort)
          internalDone()
        } else
          this.#log.info('connection closed', { endpoint: endpoint.urlText, client_ip: client.address, bytes_in: stats.bytesIn, bytes_out: stats.bytesOut, duration_ms: stats.endedAt - stats.startedAt })
        socket.data.report?.(stats)
      },
    })
    if (!ok) {
      internalDone?.()
      this.#log.warn('upstream unreachable', { endpoint: endpoint.urlText, upstream: `${target.hostname}:${target.port}`, code: CODES.UPSTREAM_REFUSED })
      socket.end()
    }
  }

  /** Starts an internal HTTP/2 server with the current certificates; the previous one drains and stops. */
  #rebuild(): Promise<void> {
    const run = async () => {
      const pairs = this.#o.certs.all()
      if (pairs.length === 0 || this.#closing) return
      const entries: { cert: string; key: string; serverName?: string }[] = [{ cert: pairs[0]!.cert, key: pairs[0]!.key }]
      // One entry per name, with the certificate select() prefers (a user file over a dev leaf…).
      const names = new Set(pairs.flatMap((p) => p.names).filter((n) => !/^[\d.]+$|:/.test(n)))
      for (const name of names) {
        const pair = this.#o.certs.select(name) ?? pairs.find((p) => p.names.includes(name))!
        entries.push({ serverName: name, cert: pair.cert, key: pair.key })
      }
      const previous = this.#h2
      this.#served = new Set(pairs)
      const server = listenH2({ ...this.#internalOptions(), tls: entries })
      this.#h2 = { port: server.port!, inUse: 0, retired: false, stop: (force) => server.stop(force) }
      this.#internals.add(this.#h2)
      // Connections already handed to the old server keep it alive until they finish.
      if (previous) this.#retire(previous)
      this.#log.debug('internal https server ready', { certificates: pairs.length, names: entries.length - 1 })
    }
    const next = (this.#rebuilding ?? Promise.resolve()).then(run)
    this.#rebuilding = next
    return next
  }
}
