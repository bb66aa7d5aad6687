import { Hono, type Context } from 'hono'
import { agentSessionObject, type SessionLike } from '../../events/agent.ts'
import { CODES } from '../../lib/errors.ts'
import { StreamType } from '../../tunnel/proto/messages.ts'
import { ApiError } from '../errors.ts'

/** What the API needs from a live agent session (an `AgentSession`). */
export interface SessionControl extends SessionLike {
  readonly latencyMs: number | undefined
  readonly mux: { readonly closed: boolean }
  close(message?: string): void
  command(type: typeof StreamType.RESTART, body?: object): Promise<unknown>
}

/** An agent endpoint as the registry lists it. */
export interface AgentTunnelInfo {
  id: string
  url: string
  account: string
  online: boolean
  session: string | undefined
}

export interface SessionRouteOptions {
  sessions: () => Iterable<SessionControl>
  tunnels: () => readonly AgentTunnelInfo[]
}

/** `GET /tunnel-sessions` item: ngrok's TunnelSession fields that apply, plus warren's. */
export interface TunnelSessionResource {
  id: string
  uri: string
  agent_version: string
  os: string
  /** The agent's address as the edge sees it. */
  ip: string
  metadata: string
  started_at: string
  /** warren: account the authtoken belongs to. */
  account: string
  /** warren: `ip:port` of the agent's connection. */
  remote_addr: string
  /** warren: what the agent said about itself when it authenticated (no secrets). */
  client_info: Record<string, unknown>
  /** warren: round trip of the edge's last heartbeat, when measured. */
  latency_ms: number | null
  /** warren: the endpoints this session serves. */
  endpoints: { id: string; uri: string; url: string }[]
}

/** How long `restart` waits for the agent's answer. */
const RESTART_TIMEOUT_MS = 10_000

function hostOf(remoteAddr: string): string {
  const i = remoteAddr.lastIndexOf(':')
  return (i < 0 ? remoteAddr : remoteAddr.slice(0, i)).replace(/^\[|\]$/g, '')
}

/**
 * `/tunnel-sessions`: the agents connected now, with their endpoints; `stop` ends a session (the
 * agent reconnects and keeps its URLs within the grace period); `restart` asks the agent to restart.
 */
export function sessionRoutes(options: SessionRouteOptions): Hono {
  const app = new Hono()
  const live = () => {
    // An agent that resumed its id (on this worker or another) while the edge has not yet seen its old
    // connection close shows up twice: the newest is the agent, the older a connection about to end.
    const byId = new Map<string, SessionControl>()
    for (const s of options.sessions()) {
      if (s.account === undefined || s.id === '' || s.mux.closed) continue
      const seen = byId.get(s.id)
      if (!seen || s.connectedAt > seen.connectedAt) byId.set(s.id, s)
    }
    return [...byId.values()]
  }
  const find = (id: string) => {
    const session = live().find((s) => s.id === id)
    if (!session) throw new ApiError(CODES.API_NOT_FOUND, 404, `No tunnel session with id "${id}"`)
    return session
  }
  const show = (c: Context, s: SessionControl): TunnelSessionResource => {
    const origin = new URL(c.req.url).origin
    const o = agentSessionObject(s)
    return {
      id: o.id,
      uri: `${origin}/tunnel-sessions/${encodeURIComponent(o.id)}`,
      agent_version: o.agent_version,
      os: o.os,
      ip: hostOf(o.remote_addr),
      metadata: typeof o.client_info.Metadata === 'string' ? o.client_info.Metadata : '',
      started_at: o.started_at,
      account: o.account,
      remote_addr: o.remote_addr,
      client_info: o.client_info,
      latency_ms: s.latencyMs ?? null,
      endpoints: options
        .tunnels()
        .filter((t) => t.session === s.id && t.account === o.account)
        .map((t) => ({ id: `ep_${t.id}`, uri: `${origin}/endpoints/ep_${t.id}`, url: t.url })),
    }
  }

  app.get('/', (c) => {
    const sessions = live().sort((a, b) => a.connectedAt - b.connectedAt)
    return c.json({ tunnel_sessions: sessions.map((s) => show(c, s)), uri: new URL(c.req.url).toString(), next_page_uri: null })
  })
  app.get('/:id', (c) => c.json(show(c, find(c.req.param('id')))))
  app.post('/:id/stop', (c) => {
    find(c.req.param('id')).close('stopped through the API')
    return c.body(null, 204)
  })
  app.post('/:id/restart', async (c) => {
    const session = find(c.req.param('id'))
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<{ Error: string }>((resolve) => (timer = setTimeout(() => resolve({ Error: `no answer within ${RESTART_TIMEOUT_MS / 1000} s` }), RESTART_TIMEOUT_MS)))
    const reply = await Promise.race([session.command(StreamType.RESTART), timeout]).finally(() => clearTimeout(timer))
    const error = typeof reply === 'object' && reply !== null && typeof (reply as { Error?: unknown }).Error === 'string' ? (reply as { Error: string }).Error : ''
    if (error) throw new ApiError(CODES.API_AGENT_COMMAND_FAILED, 502, `The agent did not restart: ${error}`, { agent_error: error })
    return c.body(null, 204)
  })

  const notAllowed = (allow: string) => (c: Context) => {
    c.header('allow', allow)
    throw new ApiError(CODES.API_METHOD_NOT_ALLOWED, 405, `${c.req.method} is not allowed here (allowed: ${allow})`)
  }
  app.all('/', notAllowed('GET'))
  app.all('/:id', notAllowed('GET'))
  app.all('/:id/stop', notAllowed('POST'))
  app.all('/:id/restart', notAllowed('POST'))
  return app
}
