import type { EndpointUrl } from '../config/url.ts'
import type { CompiledPolicy } from '../policy/engine.ts'
import type { EndpointInfo } from '../policy/types.ts'
import type { StreamCloseCause } from '../tunnel/mux.ts'

/**
 * One proxied connection to an agent, shaped like a Bun socket: `write` returns the bytes it took
 * (the rest waits for `ondrain`). A muxado stream of an agent session, or a forwarded-tcpip channel of
 * an SSH session.
 */
export interface TunnelStream {
  ondata: (chunk: Uint8Array) => void
  ondrain: () => void
  /** The peer half-closed: no more data will come. */
  onend: () => void
  /** Fully closed (both ends, a reset, or the session ended). */
  onclose: () => void
  readonly closed: boolean
  /** Why it closed; undefined while open. */
  readonly closeCause: StreamCloseCause | undefined
  /** The peer's reset code (muxado `MuxError`), when it reset the stream. */
  readonly resetCode: number | undefined
  write(chunk: Uint8Array): number
  end(): void
  terminate(code?: number): void
  pause(): void
  resume(): void
}

/** How traffic reaches an agent endpoint: a stream on the agent's tunnel session. */
export interface TunnelTarget {
  /**
   * Opens a proxy stream for one connection. Waits a bounded time while the agent is reconnecting or
   * the session is at its stream cap (unless `wait` is false: a pool with another member online);
   * undefined when it cannot.
   */
  connect(clientAddr: string, options?: { wait?: boolean }): Promise<TunnelStream | undefined>
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
