import type { AgentTunnelInfo, SessionControl } from '../api/routes/sessions.ts'
import type { Scheme } from '../config/url.ts'
import { publicEndpointUrl } from '../config/url.ts'
import type { Endpoint, TunnelStream } from '../endpoints/endpoint.ts'
import type { EndpointStore } from '../endpoints/store.ts'
import type { EventBus } from '../events/bus.ts'
import type { Drainable } from '../lib/shutdown.ts'
import type { Logger } from '../lib/log.ts'
import { StreamType } from '../tunnel/proto/messages.ts'
import type { AgentRegistry } from '../tunnel/registry.ts'
import type { LinkRequest } from './link.ts'
import type { ClusterRegistry, EndpointClaim, SessionCommand, SessionRecord } from './registry.ts'
import { RemoteEndpoints } from './remote-endpoints.ts'
import type { ClusterScope } from '../policy/types.ts'

/** How often a member republishes its sessions (their latency; sessions that bound nothing yet). */
const REFRESH_MS = 2000

export interface MemberOptions {
  registry: AgentRegistry
  store: EndpointStore
  /** Agent and SSH sessions connected to this member. */
  sessions: () => Iterable<SessionControl>
  /** Where session starts and stops are announced: the other members learn of them at once. */
  events: EventBus
  defaultPorts: Readonly<Record<Scheme, number>>
  /** The edge's session key (agent endpoints' oauth/openid-connect actions), for the endpoints other members hold. */
  sessionKey?: Uint8Array | undefined
  /** Where rate-limit `scope: cluster` counts, for the endpoints other members hold. */
  clusterScope?: ClusterScope | undefined
  waitMs: number
  log: Logger
  /** Opens a proxy stream on the link of the member whose link address is `link`. */
  dial: (link: string, request: LinkRequest) => Promise<TunnelStream | undefined>
  /** Stops a local agent endpoint whose URL another member holds (split brain), telling its agent why. */
  release: (claim: EndpointClaim, message: string) => void
}

/** What membership in a cluster (workers of one machine, or nodes sharing Redis) adds to an edge. */
export interface ClusterMember {
  /** Sessions other members hold, for `/api/tunnel-sessions` (stop and restart go to their member). */
  sessions(): SessionControl[]
  /** Agent endpoints other members hold, for the API's listings. */
  tunnels(): AgentTunnelInfo[]
  /**
   * The link as a part of the shutdown: streams other members opened to this member's agents are
   * in flight like this member's own requests, so the agents are not told to go before they end.
   */
  readonly link: Drainable
  close(): void
}

/**
 * Joins a cluster through `cluster`: publishes what this member holds, keeps the other members'
 * agent endpoints in the table (their connections go over the link), and runs the commands the others
 * send for this member's sessions. Returns the unsubscribe.
 */
export function attachMember(cluster: ClusterRegistry, options: MemberOptions): { sessions(): SessionControl[]; tunnels(): AgentTunnelInfo[]; detach(): void } {
  const { registry } = options
  const remote = new RemoteEndpoints(cluster, { defaultPorts: options.defaultPorts, waitMs: options.waitMs, log: options.log, sessionKey: options.sessionKey, clusterScope: options.clusterScope, local: (a, t) => registry.localTunnel(a, t), dial: options.dial })
  const publish = () => cluster.publish({ endpoints: registry.claims(), sessions: [...options.sessions()].filter((s) => s.account && !s.mux.closed).map(sessionRecord) })
  let current: Endpoint[] = []
  const unChange = cluster.onChange(() => {
    const next = remote.build()
    // Most changes are other members' session latencies: the table is rebuilt only when endpoints changed.
    if (next.length === current.length && next.every((e, i) => e === current[i])) return
    current = next
    registry.setRemote(next)
  })
  cluster.onCommand((c) => runCommand(options.sessions, c))
  const unsubscribe = options.store.onChange(publish)
  // After the event: the session has left the listener's set (or joined it) by the next turn; a burst of
  // session events publishes once. Session events only (`requests: false`): a tap of request events too
  // would build every relayed request's event.
  let publishSoon = false
  const untap = options.events.tap(
    (e) => {
      if (!e.event_type.startsWith('agent_session_') || publishSoon) return
      publishSoon = true
      setImmediate(() => {
        publishSoon = false
        publish()
      })
    },
    { requests: false },
  )
  const timer = setInterval(publish, REFRESH_MS)
  publish()
  return {
    sessions: () => cluster.others().flatMap((m) => m.sessions.map((s) => remoteSession(s, m.member, cluster, options.log))),
    tunnels: () =>
      cluster.others().flatMap((m) =>
        m.endpoints.map((e) => ({ id: e.tunnel, url: publicEndpointUrl(e.url, options.defaultPorts), account: e.account, online: m.alive && e.session !== undefined, session: e.session })),
      ),
    detach() {
      clearInterval(timer)
      unsubscribe()
      untap()
      unChange()
    },
  }
}

function sessionRecord(s: SessionControl): SessionRecord {
  return { id: s.id, account: s.account!.name, remoteAddr: s.remoteAddr, connectedAt: s.connectedAt, clientInfo: { ...s.clientInfo }, latencyMs: s.latencyMs }
}

/** Runs a command another member's API sent for one of this member's sessions; '' when it worked. */
async function runCommand(sessions: () => Iterable<SessionControl>, c: SessionCommand): Promise<string> {
  const session = [...sessions()].find((s) => s.id === c.session && !s.mux.closed)
  if (!session) return `no tunnel session with id "${c.session}" here`
  if (c.action === 'stop') return void session.close('stopped through the API'), ''
  const reply = await session.command(StreamType.RESTART)
  const error = typeof reply === 'object' && reply !== null ? (reply as { Error?: unknown }).Error : undefined
  return typeof error === 'string' ? error : ''
}

/** A session another member holds, as the API lists it: its commands run on that member. */
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
      void cluster.command(member, { session: s.id, action: 'stop' }).then((error) => error && log.warn('stop of a session on another cluster member failed', { session: s.id, member, error }))
    },
    async command() {
      const error = await cluster.command(member, { session: s.id, action: 'restart' })
      return error ? { Error: error } : {}
    },
  }
}
