import type { Binding, Scheme } from '../config/url.ts'
import { CODES } from '../lib/errors.ts'
import type { Endpoint } from './endpoint.ts'

/** Endpoints that share one URL and binding; one member unless pooling is enabled. */
export interface Pool {
  readonly key: string
  readonly members: readonly Endpoint[]
  /**
   * Picks the member for the next request (round-robin), passing over agent members whose session is
   * closed or closing; when no member is online it picks among all of them (a request then waits
   * for a reconnecting agent, as a lone endpoint's would).
   */
  pick(): Endpoint
  /**
   * The member `pick()` would return now, without moving the round-robin on: for a look at the pool
   * that is not itself a request (the TLS front runs on_tcp_connect before the HTTPS requests pick).
   */
  peek(): Endpoint
  /**
   * The next online member not in `tried` (round-robin), for sending a failed request again; undefined
   * when there is none.
   */
  pickOther(tried: ReadonlySet<Endpoint>): Endpoint | undefined
}

export interface LookupKey {
  /** Account namespace; only internal endpoints are namespaced. */
  account: string
  binding: Binding
  scheme: Scheme
  host: string
  port: number
}

function keyOf(k: LookupKey, host = k.host): string {
  // A tcp:// connection carries no hostname: only its port can select the endpoint.
  const name = k.scheme === 'tcp' && k.binding === 'public' ? '' : host
  return `${k.binding === 'internal' ? k.account : ''}\0${k.binding}\0${k.scheme}\0${name}\0${k.port}`
}

export function endpointKey(ep: Endpoint): string {
  return keyOf({ account: ep.account, binding: ep.url.binding, scheme: ep.url.scheme, host: ep.url.host, port: ep.port })
}

/** A cloud endpoint is always there; an agent endpoint only while its session is up. */
function isOnline(ep: Endpoint): boolean {
  return ep.tunnel === undefined || ep.tunnel.online
}

function makePool(key: string, members: Endpoint[]): Pool {
  let next = 0
  /** The next member from the round-robin position that `accept` takes; advances past it unless `peek`. */
  function take(accept: (ep: Endpoint) => boolean, peek = false): Endpoint | undefined {
    for (let i = 0; i < members.length; i++) {
      const at = (next + i) % members.length
      const ep = members[at]!
      if (!accept(ep)) continue
      if (!peek) next = (at + 1) % members.length
      return ep
    }
    return undefined
  }
  return {
    key,
    members,
    pick() {
      if (members.length === 1) return members[0]!
      return take(isOnline) ?? take(() => true)!
    },
    peek() {
      if (members.length === 1) return members[0]!
      return take(isOnline, true) ?? take(() => true, true)!
    },
    pickOther(tried) {
      return take((ep) => !tried.has(ep) && isOnline(ep))
    },
  }
}

/** An endpoint that could not join the table, and why. */
export interface Rejection {
  endpoint: Endpoint
  code: string
  message: string
}

/**
 * An immutable snapshot of every endpoint, swapped as a whole on reload. Exact hosts are one map
 * lookup; wildcards are tried from the most specific parent domain up.
 */
export class EndpointTable {
  readonly version: number
  readonly endpoints: readonly Endpoint[]
  #pools: Map<string, Pool>
  #hasWildcards: boolean

  private constructor(version: number, endpoints: Endpoint[], pools: Map<string, Pool>) {
    this.version = version
    this.endpoints = endpoints
    this.#pools = pools
    this.#hasWildcards = endpoints.some((e) => e.url.wildcard)
  }

  static readonly EMPTY = new EndpointTable(0, [], new Map())

  /**
   * Builds a table. Endpoints sharing a key form a pool only if all of them enable pooling; otherwise
   * the ones listed first keep the URL and the rest are rejected with a message naming both sources.
   * Callers list currently-serving endpoints first so a new file cannot take over a URL.
   */
  static build(version: number, endpoints: readonly Endpoint[]): { table: EndpointTable; rejected: Rejection[] } {
    const groups = new Map<string, Endpoint[]>()
    const rejected: Rejection[] = []
    for (const ep of endpoints) {
      const key = endpointKey(ep)
      const group = groups.get(key)
      if (!group) {
        groups.set(key, [ep])
        continue
      }
      const holder = group[0]!
      if (holder.poolingEnabled && ep.poolingEnabled) group.push(ep)
      else
        rejected.push({
          endpoint: ep,
          code: CODES.ENDPOINT_POOL_CONFLICT,
          message: `${ep.urlText} (${ep.url.binding}) is already served by ${holder.source}; set pooling_enabled: true on both to share it`,
        })
    }
    const pools = new Map<string, Pool>()
    const accepted: Endpoint[] = []
    for (const [key, members] of groups) {
      pools.set(key, makePool(key, members))
      accepted.push(...members)
    }
    return { table: new EndpointTable(version, accepted, pools), rejected }
  }

  /** Exact host first, then `*.` parents from the most specific (`*.b.example.com` before `*.example.com`). */
  lookup(k: LookupKey): Pool | undefined {
    const exact = this.#pools.get(keyOf(k))
    if (exact || !this.#hasWildcards || k.scheme === 'tcp') return exact
    let host = k.host
    for (let dot = host.indexOf('.'); dot !== -1; dot = host.indexOf('.')) {
      host = host.slice(dot + 1)
      const pool = this.#pools.get(keyOf(k, `*.${host}`))
      if (pool) return pool
    }
    return undefined
  }
}
