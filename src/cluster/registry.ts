import type { EndpointUrl } from '../config/url.ts'

/**
 * The cluster registry: which member (a worker of `warren serve --workers N`, later a node sharing
 * Redis) holds which agent session and which agent endpoint. Each member publishes the whole of
 * what it holds (a snapshot, as traefik's providers do) and reads what the others hold; it never
 * edits another member's entries. What a member published lives as long as its lease: the local
 * registry's lease is the worker process (plus the reconnect grace once it died), a Redis registry's
 * a key with a TTL the member renews.
 */
export interface ClusterRegistry {
  /** This member's id (`w1`, `w2` … for workers). */
  readonly self: string
  /** Replaces what this member holds. Cheap to call on every change: the transport coalesces. */
  publish(state: MemberHoldings): void
  /**
   * What every other member holds now (members whose lease ran out are gone). A new array after every
   * change and the same one until then, so a caller may keep what it derived from it by identity.
   */
  others(): readonly MemberState[]
  /** Called after `others()` changed. Returns the unsubscribe. */
  onChange(listener: () => void): () => void
  /**
   * Asks the member holding a session to run a command on it (the REST API's stop and restart);
   * resolves with the command's error text, '' when it succeeded.
   */
  command(member: string, command: SessionCommand): Promise<string>
  /** Runs the commands other members send for this member's sessions. */
  onCommand(handler: (command: SessionCommand) => Promise<string>): void
  close(): void
}

/** What one member holds. */
export interface MemberHoldings {
  endpoints: EndpointClaim[]
  sessions: SessionRecord[]
}

export interface MemberState extends MemberHoldings {
  member: string
  /** Where its link listens: another member opens proxy streams to its agents there. */
  link: string
  /** False once the member is gone (its process died); its endpoints stay reserved until its lease ends. */
  alive: boolean
}

/** One agent endpoint as the cluster knows it: enough for another member to serve its URL. */
export interface EndpointClaim {
  /** Tunnel id, unique within the account; the agent re-binds it when it reconnects. */
  tunnel: string
  account: string
  url: EndpointUrl
  /** The agent's protocol (`http`, `https`, `tcp`, `tls`). */
  proto: string
  proxyProtocol: 0 | 1 | 2
  pooling: boolean
  /**
   * The endpoint's traffic policy as the Bind asked for it (before compiling): every member compiles
   * it for itself. May hold credentials from the agent's options (basic-auth users): never logged.
   */
  policy: unknown
  description: string | undefined
  metadata: string | undefined
  /** The session serving it; undefined while its agent reconnects. */
  session: string | undefined
}

/** A command for one agent session. */
export interface SessionCommand {
  session: string
  action: 'stop' | 'restart'
}

/** An agent session as `/api/tunnel-sessions` lists it. */
export interface SessionRecord {
  id: string
  account: string
  remoteAddr: string
  connectedAt: number
  clientInfo: Record<string, unknown>
  latencyMs: number | undefined
}
