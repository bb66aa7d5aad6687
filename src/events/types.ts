/**
 * Events the edge publishes. The envelope and the traffic events use ngrok's event format and field
 * names (`event_id`, `event_type`, `event_timestamp`, `object`; `http_request_complete.v0`,
 * `tcp_connection_closed.v0`, `agent_session_start.v0`, `agent_session_stop.v0`), so tools built for
 * ngrok's event destinations read them unchanged. `config_reload.v0` is warren's own.
 *
 * The list is append-only: a type is never renamed, and a changed payload gets a new version.
 */

/** The connection part of traffic events (ngrok's `conn.*`). Timestamps are RFC 3339. */
export interface ConnFields {
  client_ip: string
  /** warren: the client's source port. */
  client_port: number
  server_ip: string
  /** The hostname the client asked for (Host or SNI); empty for tcp:// endpoints. */
  server_name: string
  server_port: number
  start_ts: string
}

/** The endpoint a connection or request reached (warren; null when none matched). */
export interface EndpointRef {
  id: string
  url: string
  type: 'cloud' | 'agent'
}

export interface HttpRequestCompleteObject {
  conn: ConnFields
  http: {
    request: {
      method: string
      url: { scheme: string; host: string; path: string; query: string; raw: string }
      user_agent: string
      /** From Content-Length; -1 when the client streamed the body without one. */
      body_length: number
    }
    response: {
      /** 0 when the policy closed the connection without an answer. */
      status_code: number
      /** From Content-Length; -1 when the body is streamed without one. */
      body_length: number
    }
  }
  endpoint: EndpointRef | null
  /** warren: time from the request's arrival to the response head (ms). */
  duration_ms: number
  /** warren: the code of an edge-made error (`Warren-Error-Code`), else null. */
  error_code: string | null
  /** Metadata of the `log` action (ngrok: `traffic_policy.logs`); merged, later keys win. */
  traffic_policy: { logs: Record<string, unknown> } | null
}

export interface TcpConnectionClosedObject {
  conn: ConnFields & {
    /** Bytes from the client to the edge. */
    bytes_in: number
    /** Bytes from the edge to the client. */
    bytes_out: number
    end_ts: string
  }
  endpoint: EndpointRef | null
  /** warren: `tcp`, `tls` (passthrough or terminate-tls) or `https` (terminated at the TLS port). */
  protocol: 'tcp' | 'tls' | 'https'
  /** Metadata of the `log` action in on_tcp_connect (ngrok: `traffic_policy.logs`). */
  traffic_policy: { logs: Record<string, unknown> } | null
}

/** A connected agent, as `GET /tunnel-sessions` shows it. */
export interface AgentSessionObject {
  id: string
  account: string
  remote_addr: string
  started_at: string
  agent_version: string
  os: string
  client_info: Record<string, unknown>
}

export interface AgentSessionStopObject extends AgentSessionObject {
  /** `goodbye`: the agent closed its session (its endpoints go at once); `dropped`: anything else. */
  reason: 'goodbye' | 'dropped'
}

export interface ConfigReloadObject {
  /** What started it: `start`, `watch`, `SIGHUP`, `api`. */
  reason: string
  /** Endpoint table version after the reload. */
  version: number
  /** False when a file or endpoint has an error (those keep their previous state or stay off). */
  ok: boolean
  endpoints: number
  /** Policies files that changed. */
  changed: string[]
  errors: { file: string; line: number; col: number; code: string; message: string }[]
}

interface Envelope<T extends string, O> {
  /** `ev_` followed by a unique id. */
  event_id: string
  event_type: T
  /** RFC 3339 with milliseconds. */
  event_timestamp: string
  /** warren, in a cluster (`cluster.redis`): the id of the node that produced the event. */
  node?: string
  /** warren, under `warren serve --workers N`: the number of the worker that produced the event. */
  worker?: number
  object: O
}

export type HttpRequestCompleteEvent = Envelope<'http_request_complete.v0', HttpRequestCompleteObject>
export type TcpConnectionClosedEvent = Envelope<'tcp_connection_closed.v0', TcpConnectionClosedObject>
export type AgentSessionStartEvent = Envelope<'agent_session_start.v0', AgentSessionObject>
export type AgentSessionStopEvent = Envelope<'agent_session_stop.v0', AgentSessionStopObject>
export type ConfigReloadEvent = Envelope<'config_reload.v0', ConfigReloadObject>

/** Every event the edge publishes, discriminated by `event_type`. */
export type WarrenEvent = HttpRequestCompleteEvent | TcpConnectionClosedEvent | AgentSessionStartEvent | AgentSessionStopEvent | ConfigReloadEvent

export type EventType = WarrenEvent['event_type']
export type EventObject<T extends EventType> = Extract<WarrenEvent, { event_type: T }>['object']

/** Every event type, in the order they were added. */
export const EVENT_TYPES = [
  'http_request_complete.v0',
  'tcp_connection_closed.v0',
  'agent_session_start.v0',
  'agent_session_stop.v0',
  'config_reload.v0',
] as const satisfies readonly EventType[]

/**
 * What the counters (metrics) read about one answered HTTP request: the figures of its
 * `http_request_complete.v0` event. An emitter may fill and reuse one object: it is read before
 * `countRequest` returns.
 */
export interface RequestTally {
  /** The endpoint's URL, "" when none matched. */
  endpoint: string
  /** The endpoint's id (`ep_…`), "" when none matched. */
  endpointId: string
  method: string
  /** The path and query as the client sent them (the SSH front door's console lines show it). */
  path: string
  /** 0 when a policy closed the connection. */
  status: number
  durationMs: number
  /** Declared by Content-Length; -1 (or 0) counts nothing. */
  requestBytes: number
  responseBytes: number
}

/** What emitters hold: publishing must never block or throw into the data path. */
export interface EventSink {
  emit(event: WarrenEvent): void
  /**
   * Counts an answered request without building its event, when nothing reads that event (no
   * subscriber, no tap of every event); false when the caller must `emit` the event instead.
   */
  countRequest?(tally: RequestTally): boolean
}

/** Who produces this process's events, when it is one of several (setEventOrigin). */
let origin: { node?: string; worker?: number } | undefined

/**
 * Names this process in every event it makes from now on: a node of a cluster (`node`) or a worker of
 * `--workers N` (`worker`), so a stream that carries every member's events says whose each one is.
 * A single edge never calls it and its events keep ngrok's envelope exactly.
 */
export function setEventOrigin(value: { node?: string; worker?: number }): void {
  origin = value
}

/** The `node` / `worker` this process's events carry (undefined for a single edge). */
export function eventOrigin(): Readonly<{ node?: string; worker?: number }> | undefined {
  return origin
}

const PREFIX = `ev_${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36).padStart(4, '0')}`
let counter = 0

/**
 * Wraps an object in an envelope with a fresh id and the current time. Ids are a per-process
 * prefix plus a counter: unique, ordered, and cheap enough for every request. The id and the time
 * are strings made when first read (a sink serializing the event), not when it is emitted: most
 * events only reach the metrics tap, which reads neither.
 *
 * @example makeEvent('config_reload.v0', { reason: 'watch', version: 2, ok: true, endpoints: 3, changed: [], errors: [] })
 */
export function makeEvent<T extends EventType>(type: T, object: EventObject<T>, at: Date | number = Date.now()): Extract<WarrenEvent, { event_type: T }> {
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER
  const n = counter
  const timestamp = lazyIso(typeof at === 'number' ? at : at.getTime())
  let id: string | undefined
  const event = {
    get event_id() {
      return (id ??= `${PREFIX}${n.toString(36).padStart(6, '0')}`)
    },
    event_type: type,
    get event_timestamp() {
      return timestamp()
    },
    object,
  } as Extract<WarrenEvent, { event_type: T }>
  return origin ? Object.assign(event, origin) : event
}

/** An ISO timestamp of `ms` formatted when first read: `{ get x() { return iso() } }` in an event object. */
export function lazyIso(ms: number): () => string {
  let text: string | undefined
  return () => (text ??= new Date(ms).toISOString())
}
