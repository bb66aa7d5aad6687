import type { EndpointUrl } from '../config/url.ts'
import type { CompiledPolicy } from '../policy/engine.ts'
import type { EndpointInfo } from '../policy/types.ts'
import type { MuxStream } from '../tunnel/mux.ts'

/** How traffic reaches an agent endpoint: a stream on the agent's tunnel session. */
export interface TunnelTarget {
  /**
   * Opens a proxy stream for one connection. Waits a bounded time while the agent is reconnecting or
   * the session is at its stream cap (unless `wait` is false: a pool with another member online);
   * undefined when it cannot.
   */
  connect(clientAddr: string, options?: { wait?: boolean }): Promise<MuxStream | undefined>
  /** PROXY protocol version the agent asked for (0 = none). */
  readonly proxyProtocol: 0 | 1 | 2
  /**
   * The agent's session is up: false while the agent reconnects (its URL is reserved) and as soon as
   * its session closes or starts closing. A pool passes over members that are not online.
   */
  readonly online: boolean
}

/** An endpoint in the table: cloud (from policies/) or, later, agent (from a tunnel session). */
export interface Endpoint {
  readonly id: string
  readonly kind: 'cloud' | 'agent'
  readonly url: EndpointUrl
  /** Canonical URL text (`https://api.example.com`). */
  readonly urlText: string
  /** Port used for matching: the URL's own port or the scheme's public port. */
  readonly port: number
  readonly account: string
  readonly poolingEnabled: boolean
  /** Where it was declared (a policies file path) or which session created it. */
  readonly source: string
  /** Line and column of the declaration in `source` (1-based), for messages. */
  readonly position: { line: number; col: number }
  readonly description: string | undefined
  readonly metadata: unknown
  readonly policy: CompiledPolicy
  /** Set on agent endpoints: traffic that falls through the policy goes to the agent. */
  readonly tunnel?: TunnelTarget
  readonly info: EndpointInfo
}
