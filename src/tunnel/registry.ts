import { randomBytes } from 'node:crypto'
import { formatEndpointUrl, parseEndpointUrl, publicEndpointUrl, withoutPublicPort, type Binding, type EndpointUrl, type Scheme } from '../config/url.ts'
import type { Endpoint, TunnelStream, TunnelTarget } from '../endpoints/endpoint.ts'
import type { EndpointStore } from '../endpoints/store.ts'
import { endpointKey } from '../endpoints/table.ts'
import { WarrenError } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'
import type { EndpointClaim } from '../cluster/registry.ts'
import { compilePolicy, validatePolicy, type CompiledPolicy } from '../policy/engine.ts'
import { ConfigIssues } from '../policy/issue.ts'
import type { ClusterScope } from '../policy/types.ts'
import { ownsHost, ownsTcpPort, type Account } from './accounts.ts'
import { mergePolicies, parsePolicyText, policyFromOpts, UnsupportedOption } from './opts.ts'
import { EdgeType, errorReply, field, stringField, type ProxyHeader } from './proto/messages.ts'
import type { RpcReply } from './session.ts'

/**
 * A session that carries agent endpoints: an agent's muxado session (`AgentSession`) or an SSH
 * connection (`SshSession`). Both bind through the same Bind requests, so the rules are the same.
 */
export interface TunnelSession {
  readonly id: string
  readonly account: Account | undefined
  /** `closed` turns true as soon as the session is closing. */
  readonly mux: { readonly closed: boolean }
  /** The peer is gone even if the session has not closed yet: another session of the account may take its URLs. */
  readonly disconnected: boolean
  /** Tells the peer one of its endpoints was stopped by the edge. */
  stopTunnel(id: string, message: string, errorCode: string): void
  /**
   * Opens a stream for one public connection; undefined when the session is full or gone (the caller
   * waits a bounded time and retries). A rejection means the agent refused this connection.
   */
  openProxy(header: ProxyHeader): TunnelStream | undefined | Promise<TunnelStream | undefined>
}

export interface RegistryOptions {
  store: EndpointStore
  /** Base domain: random names are `<random>.<domain>`. */
  domain: string
  /** Port a URL without one matches, per scheme (same rule as policies files); printed URLs name it. */
  defaultPorts: Readonly<Record<Scheme, number>>
  /** How long an offline agent's URL stays reserved for it (ms). */
  graceMs: number
  /** How long a request waits for a reconnecting agent or a free stream slot (ms). */
  waitMs: number
  log: Logger
  /** The session-cookie key for the oauth/openid-connect actions agents ask for. */
  sessionKey?: Uint8Array
  /** Where rate-limit `scope: cluster` counts for agents' traffic policies. */
  clusterScope?: ClusterScope | undefined
}

/**
 * One agent endpoint. It outlives a session: when the agent reconnects and binds the same tunnel
 * id, the new session takes over and the URL never changes.
 */
class AgentTunnel implements TunnelTarget {
  readonly id: string
  readonly account: Account
  readonly url: EndpointUrl
  readonly proto: string
  readonly proxyProtocol: 0 | 1 | 2
  /** The traffic policy as the Bind asked for it: other workers compile it for themselves. */
  readonly policySpec: unknown
  session: TunnelSession | undefined
  endpoint!: Endpoint
  graceTimer: ReturnType<typeof setTimeout> | undefined
  #waiters: (() => void)[] = []
  readonly #waitMs: number
  #successor: AgentTunnel | undefined
  /** The agent knows this tunnel's id (it read the Bind answer): proxy streams may go to it. */
  #known = false
  /** The edge is shutting down: an offline agent cannot come back, so nothing waits for it. */
  #abandoned = false

  constructor(init: { id: string; account: Account; url: EndpointUrl; proto: string; proxyProtocol: 0 | 1 | 2; policySpec: unknown; session: TunnelSession; waitMs: number; known: Promise<void> }) {
    this.id = init.id
    this.policySpec = init.policySpec
    this.account = init.account
    this.url = init.url
    this.proto = init.proto
    this.proxyProtocol = init.proxyProtocol
    this.session = init.session
    this.#waitMs = init.waitMs
    void init.known.then(() => {
      this.#known = true
      this.wake()
    })
  }

  get online(): boolean {
    return this.session !== undefined && !this.session.mux.closed
  }

  /** Wakes connections waiting for the agent (it reconnected, or a stream slot freed). */
  wake(): void {
    for (const w of this.#waiters.splice(0)) w()
  }

  /**
   * A session of the same account bound this URL while this tunnel's agent was gone: connections
   * waiting here (and any that still arrive through this endpoint) go to `next`.
   */
  handOver(next: AgentTunnel): void {
    this.#successor = next
    this.wake()
  }

  /** Connections waiting for this tunnel's agent to come back give up now. */
  abandon(): void {
    this.#abandoned = true
    this.wake()
  }

  connect(clientAddr: string, options: { wait?: boolean } = {}): Promise<TunnelStream | undefined> {
    return this.#connectBy(clientAddr, Date.now() + (options.wait === false ? 0 : this.#waitMs))
  }

  async #connectBy(clientAddr: string, deadline: number): Promise<TunnelStream | undefined> {
    for (;;) {
      if (this.#successor) return this.#successor.#connectBy(clientAddr, deadline)
      const session = this.session
      if (session && !session.mux.closed && this.#known) {
        let stream: TunnelStream | undefined
        try {
          stream = await session.openProxy({
            Id: this.id,
            ClientAddr: clientAddr,
            Proto: this.proto,
            EdgeType: this.url.scheme === 'tcp' ? EdgeType.TCP : this.url.scheme === 'tls' ? EdgeType.TLS : EdgeType.HTTPS,
            PassthroughTLS: this.url.scheme === 'tls',
          })
        } catch {
          // Refused by the agent (an SSH client that could not reach its upstream): waiting would not help.
          return undefined
        }
        if (stream) {
          const prev = stream.onclose
          stream.onclose = () => {
            prev()
            this.wake()
          }
          return stream
        }
      }
      const left = deadline - Date.now()
      if (left <= 0 || (this.#abandoned && !(session && !session.mux.closed))) return undefined
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250))
        this.#waiters.push(() => (clearTimeout(timer), resolve()))
      })
    }
  }
}

/**
 * An agent endpoint for the table: one bound here (its tunnel an `AgentTunnel`) or one another
 * worker holds (its tunnel a link to that worker).
 */
export function agentEndpoint(init: {
  id: string
  account: string
  url: EndpointUrl
  defaultPorts: Readonly<Record<Scheme, number>>
  pooling: boolean
  source: string
  description: string | undefined
  metadata: string | undefined
  policy: CompiledPolicy
  tunnel: TunnelTarget
}): Endpoint {
  const { url } = init
  const urlText = formatEndpointUrl(url)
  const port = url.port ?? init.defaultPorts[url.scheme]
  return {
    id: `ep_${init.id}`,
    kind: 'agent',
    url,
    urlText,
    port,
    account: init.account,
    poolingEnabled: init.pooling,
    source: init.source,
    position: { line: 0, col: 0 },
    description: init.description,
    metadata: init.metadata,
    policy: init.policy,
    tunnel: init.tunnel,
    info: { id: `ep_${init.id}`, url: urlText, scheme: url.scheme, host: url.host, port, binding: url.binding },
  }
}

function tunnelKey(account: string, id: string): string {
  return `${account}\0${id}`
}

function randomLabel(): string {
  return randomBytes(6).toString('hex')
}

/**
 * Agent endpoints: turns Binds into endpoints in the shared table, enforces what an account may
 * bind, keeps URLs through reconnects, and removes endpoints when their grace period runs out.
 */
export class AgentRegistry {
  readonly #o: RegistryOptions
  readonly #tunnels = new Map<string, AgentTunnel>()
  /** Agent endpoints other workers hold (`warren serve --workers`); none otherwise. */
  #remote: readonly Endpoint[] = []

  constructor(options: RegistryOptions) {
    this.#o = options
  }

  /** Live and reserved agent tunnels (for the API). */
  list(): readonly { id: string; url: string; account: string; online: boolean; session: string | undefined }[] {
    return [...this.#tunnels.values()].map((t) => ({ id: t.id, url: this.#shown(t.url), account: t.account.name, online: t.session !== undefined, session: t.session?.id }))
  }

  /** `replyRead`: see SessionHost.bind; a new tunnel gets no proxy stream before it settles. */
  bind(session: TunnelSession, request: unknown, replyRead: Promise<void>): RpcReply {
    const account = session.account!
    const proto = stringField(request, 'Proto').toLowerCase() || 'https'
    const opts = field(request, 'Opts') ?? {}
    const extra = field(request, 'Extra') ?? {}
    if (!['http', 'https', 'tcp', 'tls'].includes(proto)) return errorReply(`Unsupported protocol "${proto}".`, 'ERR_NGROK_9010', 'ERR_WARREN_4006')
    const scheme = proto as Scheme
    const requestedId = stringField(request, 'Id')
    const id = requestedId || `tn_${randomBytes(12).toString('hex')}`
    const key = tunnelKey(account.name, id)
    const existing = this.#tunnels.get(key)

    // A reconnect: the same account re-binds its tunnel id; the new session takes it over.
    if (existing && existing.proto === proto) {
      if (existing.session && existing.session !== session && !existing.session.disconnected)
        return errorReply('This tunnel is already bound by another session.', 'ERR_NGROK_334', 'ERR_WARREN_4004')
      clearTimeout(existing.graceTimer)
      existing.session = session
      existing.wake()
      this.#o.log.info('agent endpoint resumed', { url: existing.endpoint.urlText, tunnel: id, client_id: session.id })
      return { Id: id, URL: this.#shown(existing.url), Proto: proto, Opts: opts, Extra: { Token: '' } }
    }

    const bindings = (field(extra, 'Bindings') as unknown[] | undefined)?.filter((b): b is string => typeof b === 'string') ?? []
    const binding = (bindings[0]?.toLowerCase() ?? '') as Binding | ''
    if (binding !== '' && binding !== 'public' && binding !== 'internal')
      return errorReply(`Unsupported binding "${binding}".`, 'ERR_NGROK_9010', 'ERR_WARREN_4006')
    const pooling = field(extra, 'PoolingEnabled') === true || field(extra, 'AllowsPooling') === true
    const proxyProtocol = Number(field(opts, 'ProxyProto')) as 0 | 1 | 2
    if (![0, 1, 2].includes(proxyProtocol)) return errorReply('ProxyProto must be 0, 1 or 2.', 'ERR_NGROK_9010', 'ERR_WARREN_4006')

    // An agent that reconnects to another worker re-binds its tunnel id: it gets the URL it had.
    const inherited = requestedId ? this.#remote.find((e) => e.id === `ep_${requestedId}` && e.account === account.name && e.url.scheme === scheme) : undefined
    let url: EndpointUrl
    try {
      url = inherited?.url ?? this.#chooseUrl(account, scheme, opts, binding || undefined)
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      return errorReply(message, err instanceof OwnershipError ? 'ERR_NGROK_320' : 'ERR_NGROK_9010', err instanceof OwnershipError ? 'ERR_WARREN_4003' : 'ERR_WARREN_1004')
    }

    let policy: CompiledPolicy
    let spec: unknown
    try {
      spec = mergePolicies(policyFromOpts(opts, scheme), parsePolicyText(field(opts, 'TrafficPolicy') ?? field(opts, 'Policy')))
      policy = compilePolicy(validatePolicy(spec), { scheme, cloud: false, sessionKey: this.#o.sessionKey, clusterScope: this.#o.clusterScope })
    } catch (err) {
      if (err instanceof UnsupportedOption) return errorReply(err.message, 'ERR_NGROK_9010', 'ERR_WARREN_4005')
      if (err instanceof WarrenError) return errorReply(`Invalid traffic policy: ${err.message}`, 'ERR_NGROK_2201', err.code)
      const text = err instanceof ConfigIssues ? err.issues.map((i) => `${i.path.join('.')}: ${i.message} [${i.code}]`).join('; ') : String(err)
      return errorReply(`Invalid traffic policy: ${text}`, 'ERR_NGROK_2201', 'ERR_WARREN_2001')
    }

    const tunnel = new AgentTunnel({ id, account, url, proto, proxyProtocol, policySpec: spec, session, waitMs: this.#o.waitMs, known: replyRead })
    const endpoint = agentEndpoint({
      id,
      account: account.name,
      url,
      defaultPorts: this.#o.defaultPorts,
      pooling,
      source: `agent session ${session.id}`,
      description: stringField(extra, 'Description') || undefined,
      metadata: stringField(extra, 'Metadata') || undefined,
      policy,
      tunnel,
    })
    const urlText = endpoint.urlText
    tunnel.endpoint = endpoint
    const conflicts = this.#o.store.current.endpoints.filter((e) => endpointKey(e) === endpointKey(endpoint))
    const joinsPool = pooling && conflicts.every((c) => c.poolingEnabled)
    // The URL's holder is gone (killed, frozen) but still reserved: its own account takes it over at once.
    const taken = joinsPool ? [] : this.#disconnectedHolders(conflicts, account)
    if (!joinsPool && !taken) {
      const conflict = conflicts.find((c) => c.kind === 'cloud') ?? conflicts[0]!
      const why = conflict.kind === 'cloud' ? `a cloud endpoint (${conflict.source})` : 'another agent'
      return errorReply(`The endpoint ${urlText} is already online, served by ${why}; enable pooling on both to share it.`, 'ERR_NGROK_334', 'ERR_WARREN_1005')
    }
    for (const old of taken ?? []) this.#tunnels.delete(tunnelKey(old.account.name, old.id))
    this.#tunnels.set(key, tunnel)
    const rejected = this.#publish()
    if (rejected.some((r) => r.endpoint === endpoint)) {
      this.#tunnels.delete(key)
      for (const old of taken ?? []) this.#tunnels.set(tunnelKey(old.account.name, old.id), old)
      this.#publish()
      return errorReply(`The endpoint ${urlText} is already online.`, 'ERR_NGROK_334', 'ERR_WARREN_1005')
    }
    for (const old of taken ?? []) {
      clearTimeout(old.graceTimer)
      // A frozen agent that wakes up learns that this endpoint is no longer its own.
      old.session?.stopTunnel(old.id, `The endpoint ${urlText} was taken over by a new session of account "${account.name}".`, 'ERR_NGROK_334')
      old.handOver(tunnel)
      this.#o.log.info('agent endpoint taken over', { url: urlText, tunnel: old.id, by_tunnel: id, client_id: session.id, previous_client_id: old.session?.id })
    }
    this.#o.log.info('agent endpoint bound', { url: urlText, binding: url.binding, tunnel: id, account: account.name, client_id: session.id, pooling })
    // The agent prints this and the SDKs return it from url(): it must work as shown, port included.
    return { Id: id, URL: this.#shown(url), Proto: proto, Opts: opts, Extra: { Token: '' } }
  }

  unbind(session: TunnelSession, request: unknown): RpcReply {
    const id = stringField(request, 'Id')
    const key = tunnelKey(session.account!.name, id)
    const tunnel = this.#tunnels.get(key)
    if (!tunnel || tunnel.session !== session) return errorReply(`No tunnel ${id} in this session.`, 'ERR_NGROK_9010', 'ERR_WARREN_4007')
    this.#remove(key, 'unbound')
    return {}
  }

  /** The session ended: its tunnels go (goodbye) or go offline and stay reserved for the grace period (drop). */
  sessionClosed(session: TunnelSession, goodbye: boolean): void {
    for (const [key, tunnel] of this.#tunnels) {
      if (tunnel.session !== session) continue
      if (goodbye) {
        this.#remove(key, 'agent closed its session')
        continue
      }
      tunnel.session = undefined
      tunnel.graceTimer = setTimeout(() => this.#remove(key, 'grace period over'), this.#o.graceMs)
      tunnel.graceTimer.unref?.()
    }
  }

  /**
   * The tunnels behind `conflicts` when every one of them is an agent endpoint of `account` whose agent
   * is disconnected (undefined otherwise: a live session, a cloud endpoint or another account's endpoint
   * keeps its URL). An empty list means there is no conflict.
   */
  #disconnectedHolders(conflicts: readonly Endpoint[], account: Account): AgentTunnel[] | undefined {
    const holders: AgentTunnel[] = []
    for (const conflict of conflicts) {
      // Held by another worker whose agent is gone (reconnecting, here perhaps): its account may take it.
      if (this.#remote.includes(conflict) && conflict.account === account.name && !conflict.tunnel?.online) continue
      const holder = [...this.#tunnels.values()].find((t) => t.endpoint === conflict)
      if (!holder || holder.account.name !== account.name || (holder.session && !holder.session.disconnected)) return undefined
      holders.push(holder)
    }
    return holders
  }

  /**
   * Edge shutdown begins: the agent port is closed, so an offline agent cannot come back; connections
   * waiting for one fail now rather than hold the drain for `reconnect_wait`.
   */
  abandonOffline(): void {
    for (const t of this.#tunnels.values()) t.abandon()
  }

  /** Edge shutdown: drop everything at once. */
  clear(): void {
    for (const t of this.#tunnels.values()) clearTimeout(t.graceTimer)
    this.#tunnels.clear()
    this.#publish()
  }

  #remove(key: string, why: string): void {
    const tunnel = this.#tunnels.get(key)
    if (!tunnel) return
    clearTimeout(tunnel.graceTimer)
    this.#tunnels.delete(key)
    // Connections waiting for its agent give up now: nobody will serve this tunnel again (a successor still takes them).
    tunnel.abandon()
    this.#publish()
    this.#o.log.info('agent endpoint removed', { url: tunnel.endpoint.urlText, tunnel: tunnel.id, reason: why })
  }

  #shown(url: EndpointUrl): string {
    return publicEndpointUrl(url, this.#o.defaultPorts)
  }

  #publish() {
    // Own endpoints first: one this worker's agent re-bound wins over another worker's stale reservation.
    return this.#o.store.setAgentEndpoints([...[...this.#tunnels.values()].map((t) => t.endpoint), ...this.#remote])
  }

  /**
   * The agent endpoints other workers hold changed. An offline tunnel here whose endpoint another
   * worker now serves (its agent reconnected there) is dropped.
   */
  setRemote(endpoints: readonly Endpoint[]): void {
    this.#remote = endpoints
    for (const [key, t] of this.#tunnels)
      if (t.session === undefined && endpoints.some((e) => e.tunnel?.online && e.account === t.account.name && endpointKey(e) === endpointKey(t.endpoint))) {
        this.#tunnels.delete(key)
        clearTimeout(t.graceTimer)
        t.wake()
        this.#o.log.info('agent endpoint removed', { url: t.endpoint.urlText, tunnel: t.id, reason: 'its agent reconnected to another worker' })
      }
    this.#publish()
  }

  /** What this worker holds, for the cluster registry. */
  claims(): EndpointClaim[] {
    return [...this.#tunnels.values()].map((t) => ({
      tunnel: t.id,
      account: t.account.name,
      url: t.url,
      proto: t.proto,
      proxyProtocol: t.proxyProtocol,
      pooling: t.endpoint.poolingEnabled,
      policy: t.policySpec,
      description: t.endpoint.description,
      metadata: typeof t.endpoint.metadata === 'string' ? t.endpoint.metadata : undefined,
      session: t.session?.id,
    }))
  }

  /** The tunnel of that account and id bound here, if any (an agent that came back to this worker). */
  localTunnel(account: string, tunnel: string): TunnelTarget | undefined {
    return this.#tunnels.get(tunnelKey(account, tunnel))
  }

  /** A proxy stream to an agent bound here, for another worker's connection (the local link). */
  connectLocal(account: string, tunnel: string, clientAddr: string, options: { wait?: boolean } = {}): Promise<TunnelStream | undefined> {
    return this.localTunnel(account, tunnel)?.connect(clientAddr, options) ?? Promise.resolve(undefined)
  }

  /**
   * Picks the URL for a Bind: the agent's `URL`/`Domain`/`Hostname`/`Subdomain` or `Addr` (tcp), else a
   * random name under the base domain (or a free port of the account's range for tcp).
   */
  #chooseUrl(account: Account, scheme: Scheme, opts: unknown, binding: Binding | undefined): EndpointUrl {
    const requestedUrl = stringField(opts, 'URL')
    const domain = stringField(opts, 'Domain') || stringField(opts, 'Hostname')
    const subdomain = stringField(opts, 'Subdomain')
    const addr = stringField(opts, 'Addr')
    const sharedTcpHost = `tcp.${this.#o.domain}`
    let raw: string
    let chosenByAgent = true
    // An Addr of "host:port" names the host as a URL does; ":port" or a bare port leaves it to the edge.
    let hostChosenByAgent = true
    if (requestedUrl) raw = requestedUrl.includes('://') ? requestedUrl : `${scheme}://${requestedUrl}`
    else if (scheme === 'tcp') {
      const port = addr ? Number(addr.slice(addr.lastIndexOf(':') + 1)) : this.#freeTcpPort(account)
      const host = addr && addr.includes(':') ? addr.slice(0, addr.lastIndexOf(':')) : ''
      raw = `tcp://${host || sharedTcpHost}:${port}`
      chosenByAgent = false
      hostChosenByAgent = host !== ''
      if (!ownsTcpPort(account, port)) throw new OwnershipError(`Port ${port} is not in the tcp port range of account "${account.name}".`)
    } else if (domain) raw = `${scheme}://${domain}`
    else if (subdomain) raw = `${scheme}://${subdomain}.${this.#o.domain}`
    else {
      if (binding === 'internal') throw new WarrenError('ERR_WARREN_1004', 'Internal endpoints need a URL with a .internal hostname.')
      raw = `${scheme}://${randomLabel()}.${this.#o.domain}`
      chosenByAgent = false
      hostChosenByAgent = false
    }
    // An agent re-binding the URL it was shown (public port included) gets the same endpoint back.
    const url = withoutPublicPort(parseEndpointUrl(raw, binding ? { binding } : {}), this.#o.defaultPorts)
    if (url.scheme !== scheme) throw new WarrenError('ERR_WARREN_1004', `The URL scheme ${url.scheme}:// does not match the endpoint protocol ${scheme}.`)
    if (url.scheme === 'tcp' && chosenByAgent && !ownsTcpPort(account, url.port!))
      throw new OwnershipError(`Port ${url.port} is not in the tcp port range of account "${account.name}".`)
    // A tcp:// URL is routed by its port alone, but its name is what users see and dial: a name the
    // account does not own would pass its port off as someone else's. Every account may use the
    // edge's shared tcp.<domain>, the name the edge gives when the agent names none.
    const shared = url.scheme === 'tcp' && url.host === sharedTcpHost
    if (hostChosenByAgent && url.binding === 'public' && !shared && !ownsHost(account, url.host))
      throw new OwnershipError(`Account "${account.name}" does not own ${url.host}; add it to the account's domains in warren.yaml.`)
    return url
  }

  #freeTcpPort(account: Account): number {
    const used = new Set(this.#o.store.current.endpoints.filter((e) => e.url.scheme === 'tcp').map((e) => e.port))
    for (const [lo, hi] of account.tcpPorts) for (let p = lo; p <= hi; p++) if (!used.has(p)) return p
    throw new OwnershipError(account.tcpPorts.length ? `Account "${account.name}" has no free tcp port left.` : `Account "${account.name}" has no tcp_ports configured in warren.yaml.`)
  }
}

/** The account may not bind that name or port. */
class OwnershipError extends Error {
  override name = 'OwnershipError'
}
