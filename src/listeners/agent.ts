import { randomBytes } from 'node:crypto'
import type { TCPSocketListener } from 'bun'
import { agentSessionObject } from '../events/agent.ts'
import { makeEvent, type EventSink } from '../events/types.ts'
import { log } from '../lib/log.ts'
import type { Account } from '../tunnel/accounts.ts'
import type { AgentRegistry } from '../tunnel/registry.ts'
import { AgentSession } from '../tunnel/session.ts'

export interface AgentListenerOptions {
  hostname: string
  port: number
  /** The agent port's certificate (dev: issued by the local CA for localhost, 127.0.0.1, ::1, agent.<domain>). */
  tls: { cert: string; key: string }
  accounts: () => readonly Account[]
  registry: AgentRegistry
  /** Receives `agent_session_start.v0` and `agent_session_stop.v0`. */
  events?: EventSink
}

/**
 * The port agents connect to: TLS (no ALPN required: the SDKs offer none), then muxado sessions
 * speaking ngrok's agent protocol.
 */
export function listenAgents(options: AgentListenerOptions): { listener: TCPSocketListener<AgentSession>; sessions: Set<AgentSession> } {
  const logger = log.child({ component: 'tunnel' })
  const sessions = new Set<AgentSession>()
  const cookieSecret = randomBytes(32)
  const { registry } = options
  const listener = Bun.listen<AgentSession>({
    hostname: options.hostname,
    port: options.port,
    tls: options.tls,
    socket: {
      open(socket) {
        const session = new AgentSession(
          { write: (b) => socket.write(b), end: () => void socket.end(), terminate: () => socket.terminate() },
          `${socket.remoteAddress}:${socket.remotePort ?? 0}`,
          {
            accounts: options.accounts,
            cookieSecret,
            log: logger,
            bind: (s, req, replyRead) => registry.bind(s, req, replyRead),
            unbind: (s, req) => registry.unbind(s, req),
            closed(s, goodbye) {
              registry.sessionClosed(s, goodbye)
              options.events?.emit(makeEvent('agent_session_stop.v0', { ...agentSessionObject(s), reason: goodbye ? 'goodbye' : 'dropped' }))
            },
            connected(s) {
              options.events?.emit(makeEvent('agent_session_start.v0', agentSessionObject(s)))
            },
          },
        )
        socket.data = session
        sessions.add(session)
      },
      data: (socket, chunk) => socket.data.mux.feed(chunk),
      drain: (socket) => socket.data.mux.drain(),
      close(socket) {
        sessions.delete(socket.data)
        socket.data.mux.transportClosed()
      },
      error: () => {},
      handshake(socket, success, err) {
        if (!success) logger.info('agent TLS handshake failed', { client_ip: socket.remoteAddress, error: err?.message })
      },
    },
  })
  return { listener, sessions }
}
