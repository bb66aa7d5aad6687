import type { Scheme } from '../config/url.ts'
import type { Endpoint, TunnelStream, TunnelTarget } from '../endpoints/endpoint.ts'
import type { Logger } from '../lib/log.ts'
import { compilePolicy, validatePolicy } from '../policy/engine.ts'
import type { ClusterScope } from '../policy/types.ts'
import { agentEndpoint } from '../tunnel/registry.ts'
import type { LinkRequest } from './link.ts'
import { rebinds } from './members.ts'
import type { ClusterRegistry, EndpointClaim } from './registry.ts'

export interface RemoteEndpointsOptions {
  defaultPorts: Readonly<Record<Scheme, number>>
  waitMs: number
  log: Logger
  /** Seals the oauth/openid-connect actions' cookies: the same key on every worker (from certs/). */
  sessionKey?: Uint8Array | undefined
  /** Where rate-limit `scope: cluster` counts (the endpoints' policies run here). */
  clusterScope?: ClusterScope | undefined
  /** This member's own tunnel of that account and id, if its agent re-bound it here. */
  local: (account: string, tunnel: string) => TunnelTarget | undefined
  /** Opens a proxy stream on the link of the member whose link address is `link`. */
  dial: (link: string, request: LinkRequest) => Promise<TunnelStream | undefined>
}

/**
 * The agent endpoints other members hold, as endpoints of this member's table: their traffic policy
 * runs here, and what falls through goes to the holder over the link. An endpoint object is kept
 * while its claim is unchanged, so connection pools keyed by it survive unrelated changes.
 */
export class RemoteEndpoints {
  readonly #registry: ClusterRegistry
  readonly #o: RemoteEndpointsOptions
  #built = new Map<string, Endpoint>()

  constructor(registry: ClusterRegistry, options: RemoteEndpointsOptions) {
    this.#registry = registry
    this.#o = options
  }

  /** The endpoints for what the other members hold now. */
  build(): Endpoint[] {
    const next = new Map<string, Endpoint>()
    for (const member of this.#registry.others())
      for (const claim of member.endpoints) {
        const key = `${member.member}\0${JSON.stringify(claim)}`
        const endpoint = this.#built.get(key) ?? this.#endpoint(claim, member.member)
        if (endpoint) next.set(key, endpoint)
      }
    this.#built = next
    return [...next.values()]
  }

  #endpoint(claim: EndpointClaim, member: string): Endpoint | undefined {
    try {
      const policy = compilePolicy(validatePolicy(claim.policy), { scheme: claim.url.scheme, cloud: false, sessionKey: this.#o.sessionKey, clusterScope: this.#o.clusterScope })
      return agentEndpoint({
        id: claim.tunnel,
        account: claim.account,
        url: claim.url,
        defaultPorts: this.#o.defaultPorts,
        pooling: claim.pooling,
        source: `agent session ${claim.session ?? '(reconnecting)'} on ${member}`,
        description: claim.description,
        metadata: claim.metadata,
        policy,
        tunnel: new RemoteTunnel(this.#registry, claim, this.#o),
      })
    } catch (err) {
      // The holder compiled it; a member that cannot (another version mid-upgrade) leaves it out.
      this.#o.log.error('cannot serve an endpoint held by another cluster member', { url: claim.url.host, member, error: err instanceof Error ? err.message : String(err) })
      return undefined
    }
  }
}

/** How often a connection waiting for a reconnecting agent looks for it again (ms). */
const POLL_MS = 100

/** An agent endpoint held by another member: each connection is a link stream to the holder. */
class RemoteTunnel implements TunnelTarget {
  readonly proxyProtocol: 0 | 1 | 2
  readonly #registry: ClusterRegistry
  readonly #claim: EndpointClaim
  readonly #o: RemoteEndpointsOptions

  constructor(registry: ClusterRegistry, claim: EndpointClaim, options: RemoteEndpointsOptions) {
    this.#registry = registry
    this.#claim = claim
    this.proxyProtocol = claim.proxyProtocol
    this.#o = options
  }

  get online(): boolean {
    return this.#holder() !== undefined
  }

  /**
   * The live member serving this endpoint now (it may have moved since this endpoint was built). A
   * pooled URL has several holders, each its own endpoint here: only the same tunnel is this one.
   */
  #holder(): { link: string; tunnel: string } | undefined {
    const c = this.#claim
    const same = (e: EndpointClaim) => e === c || (c.pooling ? e.account === c.account && e.tunnel === c.tunnel : rebinds(e, c))
    for (const m of this.#registry.others()) {
      if (!m.alive) continue
      const claim = m.endpoints.find((e) => e.session !== undefined && same(e))
      if (claim) return { link: m.link, tunnel: claim.tunnel }
    }
    return undefined
  }

  async connect(clientAddr: string, options: { wait?: boolean } = {}): Promise<TunnelStream | undefined> {
    const deadline = Date.now() + (options.wait === false ? 0 : this.#o.waitMs)
    for (;;) {
      // The agent came back to this very worker: its own tunnel serves the connection.
      const here = this.#o.local(this.#claim.account, this.#claim.tunnel)
      if (here?.online) return here.connect(clientAddr, options)
      const holder = this.#holder()
      if (holder) {
        const stream = await this.#o.dial(holder.link, { account: this.#claim.account, tunnel: holder.tunnel, client: clientAddr, wait: options.wait !== false })
        if (stream) return stream
      }
      if (Date.now() >= deadline) return undefined
      await Bun.sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())))
    }
  }
}
