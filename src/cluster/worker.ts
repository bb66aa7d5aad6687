import { join } from 'node:path'
import type { SessionControl, AgentTunnelInfo } from '../api/routes/sessions.ts'
import type { Scheme } from '../config/url.ts'
import type { Endpoint } from '../endpoints/endpoint.ts'
import type { EndpointStore } from '../endpoints/store.ts'
import type { EventBus } from '../events/bus.ts'
import type { Drainable } from '../lib/shutdown.ts'
import type { Logger } from '../lib/log.ts'
import { publicEndpointUrl } from '../config/url.ts'
import type { AgentRegistry } from '../tunnel/registry.ts'
import { serveLink } from './link.ts'
import { LocalRegistry } from './local-registry.ts'
import type { ClusterRegistry, SessionCommand, SessionRecord } from './registry.ts'
import { StreamType } from '../tunnel/proto/messages.ts'
import { RemoteEndpoints } from './remote-endpoints.ts'

/** How often a worker republishes its sessions (their latency; sessions that bound nothing yet). */
const REFRESH_MS = 2000

export interface WorkerOptions {
  /** 1-based worker number. */
  number: number
  /** The supervisor's runtime directory (control socket, one link socket per worker). */
  dir: string
  registry: AgentRegistry
  store: EndpointStore
  /** Agent and SSH sessions connected to this worker. */
  sessions: () => Iterable<SessionControl>
  /** Where session starts and stops are announced: the other workers learn of them at once. */
  events: EventBus
  defaultPorts: Readonly<Record<Scheme, number>>
  /** The edge's session key (agent endpoints' oauth/openid-connect actions), for the endpoints other workers hold. */
  sessionKey?: Uint8Array | undefined
  waitMs: number
  log: Logger
  /** The supervisor went away. */
  lost: () => void
}

/** What a worker of `warren serve --workers N` adds to an edge: the other workers' agents and sessions. */
export interface Worker {
  /** Sessions other workers hold, for `/api/tunnel-sessions` (stop and restart go to their worker). */
  sessions(): SessionControl[]
  /** Agent endpoints other workers hold, for the API's listings. */
  tunnels(): AgentTunnelInfo[]
  /** This worker serves traffic (the supervisor starts the next worker). */
  ready(): void
  /**
   * The link as a part of the shutdown: streams other workers opened to this worker's agents are
   * in flight like this worker's own requests, so the agents are not told to go before they end.
   */
  readonly link: Drainable
  close(): void
}

/**
 * Joins the other workers: serves this worker's agents to them over the link, publishes what this
 * worker holds to the registry, and keeps the other workers' agent endpoints in the table.
 */
export async function joinWorkers(options: WorkerOptions): Promise<Worker> {
  const { registry } = options
  const member = `w${options.number}.${process.pid}`
  const linkPath = join(options.dir, `${member}.sock`)
  const link = serveLink(linkPath, (r) => registry.connectLocal(r.account, r.tunnel, r.client, { wait: r.wait }))
  const cluster = await LocalRegistry.join(join(options.dir, 'control.sock'), { member, link: linkPath, lost: options.lost })
  const remote = new RemoteEndpoints(cluster, { defaultPorts: options.defaultPorts, waitMs: options.waitMs, log: options.log, sessionKey: options.sessionKey, local: (a, t) => registry.localTunnel(a, t) })
  const publish = () => cluster.publish({ endpoints: registry.claims(), sessions: [...options.sessions()].filter((s) => s.account && !s.mux.closed).map(sessionRecord) })
  let current: Endpoint[] = []
  cluster.onChange(() => {
    const next = remote.build()
    // Most changes are other workers' session latencies: the table is rebuilt only when endpoints changed.
    if (next.length === current.length && next.every((e, i) => e === current[i])) return
    current = next
    registry.setRemote(next)
  })
  cluster.onCommand((c) => runCommand(options.sessions, c))
  const unsubscribe = options.store.onChange(publish)
  // After the event: the session has left the listener's set (or joined it) by the next turn.
  const untap = options.events.tap((e) => void (e.event_type.startsWith('agent_session_') && setImmediate(publish)))
  const timer = setInterval(publish, REFRESH_MS)
  publish()
  return {
    sessions: () => cluster.others().flatMap((m) => m.sessions.map((s) => remoteSession(s, m.member, cluster, options.log))),
    tunnels: () =>
      cluster.others().flatMap((m) =>
        m.endpoints.map((e) => ({ id: e.tunnel, url: publicEndpointUrl(e.url, options.defaultPorts), account: e.account, online: m.alive && e.session !== undefined, session: e.session })),
      ),
    ready: () => cluster.ready(),
    link: { stopAccepting() {}, inFlight: () => link.active, cut: () => link.stop() },
    close() {
      clearInterval(timer)
      unsubscribe()
      untap()
      link.stop()
      cluster.close()
    },
  }
}

function sessionRecord(s: SessionControl): SessionRecord {
  return { id: s.id, account: s.account!.name, remoteAddr: s.remoteAddr, connectedAt: s.connectedAt, clientInfo: { ...s.clientInfo }, latencyMs: s.latencyMs }
}

/** Runs a command another worker's API sent for one of this worker's sessions; '' when it worked. */
async function runCommand(sessions: () => Iterable<SessionControl>, c: SessionCommand): Promise<string> {
  const session = [...sessions()].find((s) => s.id === c.session && !s.mux.closed)
  if (!session) return `no tunnel session with id "${c.session}" here`
  if (c.action === 'stop') return void session.close('stopped through the API'), ''
  const reply = await session.command(StreamType.RESTART)
  const error = typeof reply === 'object' && reply !== null ? (reply as { Error?: unknown }).Error : undefined
  return typeof error === 'string' ? error : ''
}

/** A session another worker holds, as the API lists it: its commands run on that worker. */
function remoteSession(s: SessionRecord, member: string, cluster: ClusterRegistry, log: Logger): SessionControl {
  return {
    id: s.id,
    account: { name: s.account },
    remoteAddr: s.remoteAddr,
    connectedAt: s.connectedAt,
    clientInfo: s.clientInfo,
    latencyMs: s.latencyMs,
    mux: { closed: false },
    close() {
      // The API answers 204 (the session is closing) without waiting, as for a session of its own.
      void cluster.command(member, { session: s.id, action: 'stop' }).then((error) => error && log.warn('stop of a session on another worker failed', { session: s.id, error }))
    },
    async command() {
      const error = await cluster.command(member, { session: s.id, action: 'restart' })
      return error ? { Error: error } : {}
    },
  }
}
