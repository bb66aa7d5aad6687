import type { Socket, TCPSocketListener } from 'bun'
import type { EndpointStore } from '../endpoints/store.ts'
import type { EndpointTable } from '../endpoints/table.ts'
import { tcpClosedEvent } from '../events/traffic.ts'
import type { EventSink } from '../events/types.ts'
import { CODES } from '../lib/errors.ts'
import { log } from '../lib/log.ts'
import { runTcpConnect } from '../proxy/connect.ts'
import { clientRelayHandlers, newRelayConn, relayClientData, relayTo, type RelayConn, type RelayStats } from '../proxy/tcp-relay.ts'
import { proxyHeader } from '../proxy/proxy-protocol.ts'
import { relayToTunnel } from '../proxy/tunnel-relay.ts'

export interface TcpListenerOptions {
  hostname: string
  /** SO_REUSEPORT: the worker processes of `warren serve --workers` listen on the same port. */
  reusePort?: boolean
  store: EndpointStore
  idleTimeoutSec: number
  /** Receives one `tcp_connection_closed.v0` per relayed connection. */
  events?: EventSink
}

/**
 * One listening socket per public tcp:// port in the endpoint table, opened and closed as endpoints
 * come and go. Closing a listener stops new connections; established ones keep relaying.
 */
export class TcpListeners {
  readonly #options: TcpListenerOptions
  readonly #open = new Map<number, TCPSocketListener<RelayConn>>()
  readonly #failed = new Map<number, string>()
  readonly #log = log.child({ component: 'tcp' })
  #active = 0
  #closing = false

  constructor(options: TcpListenerOptions) {
    this.#options = options
  }

  /** Client connections open right now, on every port (metrics). */
  get activeConnections(): number {
    return this.#active
  }

  /** Ports that could not be opened, with the reason (shown in status). */
  get failures(): ReadonlyMap<number, string> {
    return this.#failed
  }

  /** Opens listeners for new tcp endpoints and closes those whose endpoints are gone. */
  reconcile(table: EndpointTable): void {
    // Shutting down: ports stay closed, and listeners stay known so that stop() can cut their connections.
    if (this.#closing) return
    const wanted = new Set(table.endpoints.filter((e) => e.url.scheme === 'tcp' && e.url.binding === 'public').map((e) => e.port))
    for (const [port, listener] of this.#open) {
      if (wanted.has(port)) continue
      listener.stop(false)
      this.#open.delete(port)
      this.#log.info('tcp listener closed', { port })
    }
    this.#failed.clear()
    for (const port of wanted) {
      if (this.#open.has(port)) continue
      try {
        this.#open.set(port, this.#listen(port))
        this.#log.info('tcp listener opened', { address: `${this.#options.hostname}:${port}` })
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err)
        this.#failed.set(port, reason)
        this.#log.error('cannot open tcp listener', { port, error: reason })
      }
    }
  }

  /** Shutdown: no new connections on any port; established ones keep relaying. */
  stopAccepting(): void {
    this.#closing = true
    for (const listener of this.#open.values()) listener.stop(false)
  }

  /** Closes every port and every connection. */
  stop(): void {
    this.#closing = true
    for (const listener of this.#open.values()) listener.stop(true)
    this.#open.clear()
  }

  #listen(port: number): TCPSocketListener<RelayConn> {
    const { store, hostname, idleTimeoutSec, events } = this.#options
    const logger = this.#log
    const self = this
    return Bun.listen<RelayConn>({
      hostname,
      port,
      ...(this.#options.reusePort ? { reusePort: true } : {}),
      socket: {
        ...clientRelayHandlers,
        open(socket) {
          self.#active++
          socket.data = newRelayConn()
          socket.timeout(idleTimeoutSec)
          socket.pause()
          void accept(socket)
        },
        data: relayClientData,
        close(socket) {
          self.#active--
          clientRelayHandlers.close(socket)
        },
        timeout: (socket) => void socket.end(),
        error: () => {},
      },
    })

    async function accept(socket: Socket<RelayConn>): Promise<void> {
      const pool = store.current.lookup({ account: '', binding: 'public', scheme: 'tcp', host: '', port })
      if (!pool) {
        logger.warn('connection refused: no endpoint', { port, code: CODES.ENDPOINT_NOT_FOUND })
        return void socket.end()
      }
      const endpoint = pool.pick()
      const conn = { clientIp: socket.remoteAddress, clientPort: socket.remotePort ?? 0, serverIp: hostname, serverPort: port, startedAt: Date.now() }
      const { outcome, exchange } = await runTcpConnect(endpoint, conn)
      const onDone = (stats: RelayStats) => {
        logger.info('connection closed', { endpoint: endpoint.urlText, client_ip: conn.clientIp, bytes_in: stats.bytesIn, bytes_out: stats.bytesOut, duration_ms: stats.endedAt - stats.startedAt })
        events?.emit(tcpClosedEvent({ protocol: 'tcp', endpoint, conn, serverName: '', stats, logMetadata: exchange.logMetadata }))
      }
      if (outcome.kind === 'continue' && endpoint.tunnel) {
        // An agent endpoint: what the policy lets through goes to the agent.
        socket.resume()
        const ok = await relayToTunnel(socket, endpoint.tunnel, { addresses: conn, onDone })
        if (!ok) {
          logger.warn('agent unavailable', { endpoint: endpoint.urlText, code: CODES.ENDPOINT_NOT_FOUND })
          socket.end()
        }
        return
      }
      if (outcome.kind !== 'forward') {
        logger.info('connection closed by policy', { endpoint: endpoint.urlText, client_ip: conn.clientIp })
        return void socket.end()
      }
      const target = outcome.target.url
      socket.resume()
      const header = proxyHeader(outcome.target.kind === 'external' ? (outcome.target.proxyProtocol ?? 0) : 0, conn)
      const ok = await relayTo(socket, { hostname: target.hostname, port: Number(target.port) }, { idleTimeoutSec, onDone, ...(header ? { first: header } : {}) })
      if (!ok) {
        logger.warn('upstream unreachable', { endpoint: endpoint.urlText, upstream: target.host, code: CODES.UPSTREAM_REFUSED })
        socket.end()
      }
    }
  }
}
