import { randomBytes } from 'node:crypto'
import type { TCPSocketListener } from 'bun'
import { agentSessionObject } from '../events/agent.ts'
import { makeEvent, type EventSink } from '../events/types.ts'
import { CODES } from '../lib/errors.ts'
import { log } from '../lib/log.ts'
import { throttledLog } from '../lib/throttled-log.ts'
import type { Account } from '../tunnel/accounts.ts'
import type { AgentRegistry } from '../tunnel/registry.ts'
import { AgentSession } from '../tunnel/session.ts'
import { PendingGate, type PendingLimits } from './pending-gate.ts'

export interface AgentListenerOptions {
  hostname: string
  port: number
  /** SO_REUSEPORT: the worker processes of `warren serve --workers` listen on the same port. */
  reusePort?: boolean
  /**
   * Signs the resume cookies agents present when they reconnect (random per process by default).
   * The workers of `--workers` share one, so an agent keeps its session id on whichever worker it reaches.
   */
  cookieSecret?: Buffer
  /** The agent port's certificate (dev: issued by the local CA for localhost, 127.0.0.1, ::1, agent.<domain>). */
  tls: { cert: string; key: string }
  accounts: () => readonly Account[]
  registry: AgentRegistry
  /** Receives `agent_session_start.v0` and `agent_session_stop.v0`. */
  events?: EventSink
  /** Seconds from the TCP connection to a successful Auth (`agents.auth_timeout`). */
  authTimeoutSec: number
  /** Caps on connections that have not authenticated yet (`agents.max_pending`, `agents.max_pending_per_ip`). */
  pending: PendingLimits
  /**
   * Resolves once the other workers serve what this worker just bound (`--workers N`): the agent
   * prints its URL when the Bind is answered, and the URL must answer on whichever worker it lands.
   */
  settleBinds?: () => Promise<void>
}

/** One connection on the agent port; `release` ends its count as pending (idempotent). */
interface AgentConn {
  session: AgentSession
  release(): void
}

/**
 * The port agents connect to: TLS (no ALPN required: the SDKs offer none), then muxado sessions
 * speaking ngrok's agent protocol. Until a connection authenticates it counts against the pending
 * caps (refused past them) and has `authTimeoutSec` for its TLS handshake and Auth.
 */
export function listenAgents(options: AgentListenerOptions): { listener: TCPSocketListener<AgentConn | undefined>; sessions: Set<AgentSession> } {
  const logger = log.child({ component: 'tunnel' })
  const limitLog = throttledLog(logger)
  const sessions = new Set<AgentSession>()
  const cookieSecret = options.cookieSecret ?? randomBytes(32)
  const pending = new PendingGate(options.pending)
  const { registry } = options
  const listener = Bun.listen<AgentConn | undefined>({
    hostname: options.hostname,
    port: options.port,
    ...(options.reusePort ? { reusePort: true } : {}),
    tls: options.tls,
    socket: {
      open(socket) {
        const ip = socket.remoteAddress
        if (!pending.admit(ip)) {
          limitLog('warn', 'too many unauthenticated agent connections; refused', { code: CODES.AGENT_PENDING_LIMIT, client_ip: ip, pending: pending.pending })
          return void socket.terminate()
        }
        let admitted = true
        const release = () => {
          if (admitted) pending.release(ip)
          admitted = false
        }
        const session = new AgentSession(
          { write: (b) => socket.write(b), end: () => void socket.end(), terminate: () => socket.terminate() },
          `${socket.remoteAddress}:${socket.remotePort ?? 0}`,
          {
            accounts: options.accounts,
            cookieSecret,
            log: logger,
            bind: (s, req, replyRead) => {
              const reply = registry.bind(s, req, replyRead)
              return options.settleBinds && !('Error' in reply) ? options.settleBinds().then(() => reply) : reply
            },
            unbind: (s, req) => registry.unbind(s, req),
            closed(s, goodbye) {
              registry.sessionClosed(s, goodbye)
              options.events?.emit(makeEvent('agent_session_stop.v0', { ...agentSessionObject(s), reason: goodbye ? 'goodbye' : 'dropped' }))
            },
            connected(s) {
              release()
              options.events?.emit(makeEvent('agent_session_start.v0', agentSessionObject(s)))
            },
            authTimeoutMs: options.authTimeoutSec * 1000,
            limitLog,
          },
        )
        socket.data = { session, release }
        sessions.add(session)
      },
      data: (socket, chunk) => socket.data?.session.feed(chunk),
      drain: (socket) => socket.data?.session.mux.drain(),
      close(socket) {
        if (!socket.data) return
        const { session, release } = socket.data
        release()
        sessions.delete(session)
        session.mux.transportClosed()
      },
      error: () => {},
      handshake(socket, success, err) {
        // Throttled: anyone can fail handshakes by the thousand.
        if (!success) limitLog('info', 'agent TLS handshake failed', { client_ip: socket.remoteAddress, error: err?.message })
      },
    },
  })
  return { listener, sessions }
}
