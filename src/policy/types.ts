import type * as v from 'valibot'
import type { Binding, Scheme } from '../config/url.ts'
import type { Endpoint } from '../endpoints/endpoint.ts'
import type { ErrorCode } from '../lib/errors.ts'
import type { CelProgram } from './expr/compile.ts'
import type { Template } from './interpolate.ts'
import type { EventStreamMessage } from '../lib/sse.ts'
import type { BreakerOptions } from './actions/circuit-breaker.ts'

/**
 * The phases a traffic policy can hook. `on_event_stream_message` runs once per message of a
 * `text/event-stream` answer, after on_http_response (proxy/event-stream.ts).
 */
export const PHASES = ['on_tcp_connect', 'on_http_request', 'on_http_response', 'on_event_stream_message'] as const
export type Phase = (typeof PHASES)[number]

/** What policy code may know about the endpoint a request arrived on (`endpoint.*` in CEL). */
export interface EndpointInfo {
  id: string
  url: string
  scheme: Scheme
  host: string
  port: number
  binding: Binding
}

/** What the edge learned from a TLS handshake it terminated (`conn.tls.*` in CEL). */
export interface TlsInfo {
  /** `1.2`, `1.3`. */
  version: string
  /** IANA name, e.g. `TLS_AES_128_GCM_SHA256`. */
  cipherSuite: string
  sni: string
  /** Negotiated ALPN protocol (`h2`, `http/1.1`), empty when none. */
  alpn: string
  /** JA4 fingerprint of the ClientHello (may be computed on first read). */
  readonly ja4: string
}

/** The connection under a request (`conn.*` in CEL). */
export interface ConnInfo {
  clientIp: string
  clientPort: number
  serverIp: string
  serverPort: number
  startedAt: number
  /** Set when the edge terminated TLS for this connection; `conn.tls.*` is empty otherwise. */
  tls?: TlsInfo
}

/**
 * One HTTP request as it moves through the phases. Actions change `url` and `headers` in place:
 * what is left at the end of on_http_request is what the upstream sees.
 */
export interface HttpExchange {
  readonly endpoint: EndpointInfo
  readonly conn: ConnInfo
  readonly method: string
  /** `HTTP/1.1` (the default when unset), `HTTP/2.0`…: `req.version` in CEL. */
  readonly httpVersion?: string
  /** The URL as the client asked for it at the edge (scheme, Host, path, query). */
  url: URL
  /**
   * The same URL's parts where the exchange has them without parsing (the byte relay's, made from a
   * head that is already normal: proxy/relay-exchange.ts); the `req.url.*` variables read this when set.
   */
  readonly urlParts?: UrlParts
  headers: Headers
  vars: Record<string, unknown>
  /** Result variables of actions that ran, exposed to CEL as `actions.ngrok.<name>` (e.g. `http_request`). */
  actions: Record<string, unknown>
  /** Metadata added by the `log` action; attached to this request's events. */
  logMetadata: Record<string, unknown>
  /** Set for on_http_response: the upstream's answer. Actions may change all three; the data path sends what is left. */
  response?: HttpResponseParts
  /** Set for on_event_stream_message: the server-sent event being relayed; actions change it in place. */
  message?: EventStreamMessage
  /** The request body the upstream will get; request-body-find-replace swaps it for a rewritten stream. */
  body?: ReadableStream<Uint8Array> | null
  /** How this exchange reaches internal endpoints (forward-internal, http-request); set by the data path. */
  routing?: Routing
  /** `Set-Cookie` values an on_http_request action wants on whatever answers this request (oauth/openid-connect refresh their session this way). */
  responseCookies?: string[]
  /** Called with the status the upstream (or the edge, on a failed forward) answered; circuit-breaker counts 5xx. */
  upstreamObservers?: ((status: number) => void)[]
  /** The CEL variables computed so far (context.ts `celContext`); dropped whenever the exchange changes. */
  variables?: Record<string, unknown> | undefined
}

/** What the `req.url.*` variables read of a URL, in `URL`'s names. */
export type UrlParts = Pick<URL, 'href' | 'host' | 'hostname' | 'pathname' | 'search' | 'port' | 'protocol' | 'username' | 'password'>

/** The mutable parts of a response in on_http_response. */
export interface HttpResponseParts {
  status: number
  headers: Headers
  /** Absent when the data path has no body to offer (actions leave the body alone then). */
  body?: ReadableStream<Uint8Array> | null
}

/** Why an internal endpoint cannot be used: not found, a forwarding loop, or too deep a chain. */
export interface RoutingError {
  code: ErrorCode
  message: string
}

/** The data path's view of internal endpoints for one exchange (account namespace, forward chain). */
export interface Routing {
  /** Ids of the endpoints this request already went through by forward-internal, outermost first. */
  readonly chain: readonly string[]
  /** The internal endpoint of this exchange's account serving `url`, checked for loops and depth. */
  resolveInternal(url: URL): { endpoint: Endpoint } | { error: RoutingError }
  /** Sends a side request through an internal endpoint (its own policy runs), for http-request. */
  fetchInternal(endpoint: Endpoint, request: Request): Promise<Response>
}

export type ForwardTarget =
  /** An upstream URL; `proxyProtocol` puts a PROXY protocol header in front of tcp/tls relays. */
  | { kind: 'external'; url: URL; proxyProtocol?: 1 | 2 }
  /** An internal endpoint of the same account; `url` is what the policy named (`https://api.internal`). */
  | { kind: 'internal'; url: URL; endpoint: Endpoint }

export type Outcome =
  | { kind: 'continue' }
  | { kind: 'respond'; response: Response }
  | { kind: 'forward'; target: ForwardTarget }
  /** Drop the client connection without an answer (close-connection; deny and restrict-ips in on_tcp_connect). */
  | { kind: 'close' }

export const CONTINUE: Outcome = Object.freeze({ kind: 'continue' })

export type ActionRun = (ex: HttpExchange) => Outcome | Promise<Outcome>

/** One sliding-window decision: over capacity or not, with the counts it was made from. */
export interface WindowHit {
  limited: boolean
  retryAfterSec: number
}

/** Sliding windows every edge of a cluster counts in together (rate-limit `scope: cluster`). */
export interface SharedWindows {
  /**
   * Counts one request for `key` in a window of `windowMs` unless it is over `capacity`
   * (`countRefused` counts it anyway). Undefined when the shared store cannot decide now (unreachable,
   * too slow): the caller counts locally instead.
   */
  hit(key: string, options: { capacity: number; windowMs: number; countRefused: boolean }): Promise<WindowHit | undefined>
}

/** A circuit breaker's answer for one request (circuit-breaker.ts's CircuitBreaker gives the same). */
export type BreakerVerdict = { allowed: true; probe: boolean } | { allowed: false; retryAfterSec: number }

/** Circuit breakers every edge of a cluster opens and closes together (circuit-breaker `scope: cluster`). */
export interface SharedBreakers {
  /** May a request go now? Undefined when the shared store cannot say: the caller asks its own breaker. */
  admit(key: string, options: BreakerOptions): Promise<BreakerVerdict | undefined>
  /** Counts the upstream's answer to a request `admit` let through (5xx is a failure); never waits. */
  record(key: string, options: BreakerOptions, answer: { status: number; probe: boolean }): void
}

/**
 * Where `scope: cluster` state lives on this edge: `shared` with the other nodes (cluster.redis), or
 * `refused` with the reason (a worker of `--workers N`, which has no shared store). Absent: this
 * process is the whole edge, and `scope: cluster` counts here.
 */
export type ClusterScope = { shared: SharedWindows & SharedBreakers } | { refused: string }

/** What an action's `build` gets besides its config: template compilation and where it runs. */
export interface BuildEnv {
  phase: Phase
  scheme: Scheme
  /** Where the action sits in its policy (`[phase, rule, 'actions', index]`): names state shared across edges. */
  path: readonly (string | number)[]
  /** See ClusterScope; absent where policies are only checked or the edge is one process. */
  clusterScope?: ClusterScope
  template(text: string, path: readonly (string | number)[]): Template
  /** The edge's secret for session cookies (oauth, openid-connect); absent where a policy is only checked (agent side, `warren validate`). */
  sessionKey?: Uint8Array
  /** Compiles a CEL expression that may return any type (set-vars, bucket keys); issues are reported with `path`. */
  expression(text: string, path: readonly (string | number)[]): CelProgram
  /**
   * False when no expression or config text of the policy names `actions`: nothing can read the
   * results actions record (`actions.ngrok.*`), so an action on the hot path may skip building its
   * result. Absent: true.
   */
  readsActionResults?: boolean
}

/** One traffic-policy action: its schema, the phases it may run in and its factory. */
export interface ActionDef<S extends v.GenericSchema = v.GenericSchema> {
  type: string
  phases: readonly Phase[]
  /**
   * A terminating action ends its phase (ngrok's list: custom-response, deny, close-connection,
   * forward-internal; plus forward-external). A function decides from the config (forward-internal with
   * `on_error: continue` is not terminating).
   */
  terminating: boolean | ((config: v.InferOutput<S>) => boolean)
  /**
   * True when the action never changes the request, the response or the URL (it only sets vars,
   * action results or log metadata): the CEL variables computed before it stay valid after it.
   */
  readOnly?: boolean
  /**
   * `'headers'` when the action changes nothing but the header lines of the message its phase handles
   * (the request's in on_http_request, the response's in on_http_response): only the CEL variables
   * computed from those headers are dropped after it, the rest stay computed.
   */
  changes?: 'headers'
  config: S
  build(config: v.InferOutput<S>, env: BuildEnv): ActionRun
}

/** Keeps the config type of an action tied to its schema. */
export function defineAction<S extends v.GenericSchema>(def: ActionDef<S>): ActionDef<S> {
  return def
}
