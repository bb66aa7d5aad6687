import { createServer } from 'node:net'
import { Server } from 'ssh2'
import { agentSessionObject } from '../events/agent.ts'
import type { EventBus } from '../events/bus.ts'
import { makeEvent } from '../events/types.ts'
import { log } from '../lib/log.ts'
import type { Account } from '../tunnel/accounts.ts'
import type { AgentRegistry } from '../tunnel/registry.ts'
import { SshSession } from '../tunnel/ssh/session.ts'
import { batchSocketWrites } from '../tunnel/ssh/write-batch.ts'

/**
 * The ciphers the front door offers: AES-GCM only. The client's preference decides, and OpenSSH
 * prefers chacha20-poly1305 (which ssh2 cannot do under Bun) then aes128-ctr, which ssh2 pairs with
 * HMAC-SHA256 through node:crypto: two to five times aes128-gcm's cost per packet
 * (bench/tunnel.d/ssh2-ciphers.ts). OpenSSH has spoken AES-GCM since 6.2 (2013); a client without
 * it is told no cipher matched.
 */
const SSH_CIPHERS = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com'] as const

export interface SshListenerOptions {
  hostname: string
  port: number
  /** SO_REUSEPORT: the worker processes of `warren serve --workers` listen on the same port. */
  reusePort?: boolean
  /** OpenSSH private key text (certs/ssh/host_ed25519_key). */
  hostKey: string
  accounts: () => readonly Account[]
  registry: AgentRegistry
  domain: string
  /** Session events, and the request events each session prints to its console. */
  events?: EventBus
}

export interface SshListener {
  sessions: Set<SshSession>
  /** The bound port (useful with port 0). */
  port: number
  stop(): void
}

/**
 * The SSH front door (`listen.ssh`): `ssh -R 0:localhost:80 v2@edge -p 2222 http` creates an agent
 * endpoint without installing an agent. Sessions bind through the same registry as agents.
 */
export async function listenSsh(options: SshListenerOptions): Promise<SshListener> {
  const logger = log.child({ component: 'ssh' })
  const sessions = new Set<SshSession>()
  const { registry, events } = options
  // Endpoint id → the session whose console prints its requests. One tap for all sessions: a request
  // is a map lookup, and no event object is built for the console (the bus builds one only when a
  // subscriber reads events).
  const consoles = new Map<string, SshSession>()
  const untap = events
    ? [
        events.tapRequests(function sshConsoleRequest(t) {
          consoles.get(t.endpointId)?.requestDone(t)
        }),
        events.tap(
          function sshConsoleEvent(ev) {
            if (ev.event_type === 'tcp_connection_closed.v0' && ev.object.endpoint) consoles.get(ev.object.endpoint.id)?.connectionClosed(ev)
          },
          { requests: false },
        ),
      ]
    : []
  const server = new Server(
    // Keepalives find a client that vanished without closing (a laptop lid, a dropped network): after
    // 3 unanswered pings 15 s apart the connection closes and its endpoints go.
    {
      hostKeys: [options.hostKey],
      ident: 'warren',
      keepaliveInterval: 15_000,
      keepaliveCountMax: 3,
      algorithms: { cipher: [...SSH_CIPHERS] },
    },
    (conn, info) => {
      const session = new SshSession(conn, info, {
        accounts: options.accounts,
        domain: options.domain,
        log: logger,
        // The forward's reply goes out as soon as bind returns: proxy channels may follow at once.
        bind: (s, request) => registry.bind(s, request, Promise.resolve()),
        unbind: (s, request) => registry.unbind(s, request),
        connected(s) {
          sessions.add(s)
          events?.emit(makeEvent('agent_session_start.v0', agentSessionObject(s)))
        },
        closed(s) {
          sessions.delete(s)
          registry.sessionClosed(s, true)
          events?.emit(makeEvent('agent_session_stop.v0', { ...agentSessionObject(s), reason: 'goodbye' }))
        },
        routeConsole(endpointId, s) {
          if (s) consoles.set(endpointId, s)
          else consoles.delete(endpointId)
        },
      })
      conn.on('close', () => sessions.delete(session))
    },
  )
  // Our own listener hands each connection to ssh2 (its public injectSocket) after batching the
  // socket's writes: ssh2 writes every SSH packet in pieces, one syscall each otherwise.
  const listener = createServer((socket) => {
    batchSocketWrites(socket)
    server.injectSocket(socket)
  })
  listener.on('error', (err: Error) => logger.error('ssh listener error', { error: err.message }))
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject)
    listener.listen({ port: options.port, host: options.hostname, ...(options.reusePort ? { reusePort: true } : {}) }, () => {
      listener.off('error', reject)
      resolve()
    })
  })
  const address = listener.address()
  return {
    sessions,
    port: typeof address === 'object' && address ? address.port : options.port,
    stop() {
      for (const s of sessions) s.close()
      for (const off of untap) off()
      listener.close()
    },
  }
}
