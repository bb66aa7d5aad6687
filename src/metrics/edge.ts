import { VERSION } from '../cli/version.ts'
import type { EventBus } from '../events/bus.ts'
import type { RequestTally, WarrenEvent } from '../events/types.ts'
import { Counter, Gauge, Histogram, Registry, type HistogramState } from './prometheus.ts'

/** What the edge's metrics read at scrape time; each is optional so tests can pass only a few. */
export interface EdgeMetricSources {
  /** Traffic, reload and session counts come from the events (a tap: counted even when sinks drop). */
  bus: EventBus
  /** Endpoints in the table right now. */
  endpoints?: () => readonly { kind: 'cloud' | 'agent' }[]
  /** Agent sessions that authenticated and are still open. */
  agentSessions?: () => number
  /** Open client connections (or in-flight requests) per listener. */
  activeConnections?: () => Readonly<Record<string, number>>
  /** Certificates the edge holds. */
  certificates?: () => readonly { names: readonly string[]; notAfter: Date; source: string }[]
  /** Events each sink dropped. */
  sinkDrops?: () => readonly { name: string; dropped: number }[]
  /** Requests the byte relay served since start (plaintext and HTTPS/1.1). */
  relayedRequests?: () => number
  /** Connections the TLS port accepted since start, by how it served them (`inline`, `relay`). */
  tlsConnections?: () => Readonly<Record<string, number>>
  /** Requests sent again to another pool member, by endpoint URL and reason. */
  poolRetries?: () => readonly { endpoint: string; reason: string; count: number }[]
  /** `scope: cluster` decisions made in this process because Redis could not make them, by action type. */
  clusterLocalDecisions?: () => Readonly<Record<string, number>>
  /** Events this member sent to the other members (only while one streams them) and received from them. */
  clusterEvents?: () => { sent: number; received: number }
}

/** One endpoint's request series, resolved once. */
interface EndpointSeries {
  endpoint: string
  latency: HistogramState
  requestBytes?: { value: number }
  responseBytes?: { value: number }
  byStatus: Map<number, { value: number }>
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const CONNECTION_BUCKETS = [0.1, 1, 10, 60, 300, 1800, 3600, 14400]

/**
 * The edge's Prometheus metrics. Traffic counters follow the events (so `/metrics` and the event
 * stream always agree); gauges are read when scraped.
 *
 * @example
 * const registry = edgeMetrics({ bus, endpoints: () => store.current.endpoints })
 * new Response(registry.render(), { headers: { 'content-type': CONTENT_TYPE } })
 */
export function edgeMetrics(sources: EdgeMetricSources): Registry {
  const r = new Registry()
  const build = r.add(new Gauge('warren_build_info', 'Always 1; the version label says which warren runs.', ['version']))
  build.set({ version: VERSION }, 1)
  const requests = r.add(new Counter('warren_http_requests_total', 'HTTP requests answered, by endpoint URL ("" when none matched) and status (0: connection closed by policy).', ['endpoint', 'status']))
  const latency = r.add(new Histogram('warren_http_request_duration_seconds', 'Time from a request\'s arrival to its response head, by endpoint.', ['endpoint'], LATENCY_BUCKETS))
  const requestBytes = r.add(new Counter('warren_http_request_body_bytes_total', 'Request body bytes declared by Content-Length, by endpoint.', ['endpoint']))
  const responseBytes = r.add(new Counter('warren_http_response_body_bytes_total', 'Response body bytes declared by Content-Length, by endpoint.', ['endpoint']))
  const connections = r.add(new Counter('warren_tcp_connections_total', 'Relayed connections that closed, by endpoint and protocol (tcp, tls, https).', ['endpoint', 'protocol']))
  const connectionBytes = r.add(new Counter('warren_tcp_bytes_total', 'Bytes relayed on closed connections, by endpoint, protocol and direction (in: from clients).', ['endpoint', 'protocol', 'direction']))
  const connectionTime = r.add(new Histogram('warren_tcp_connection_duration_seconds', 'How long relayed connections stayed open.', ['endpoint', 'protocol'], CONNECTION_BUCKETS))
  const active = r.add(new Gauge('warren_active_connections', 'Open client connections on tcp and tls listeners; in-flight requests on the http listener.', ['listener']))
  const sessions = r.add(new Gauge('warren_agent_sessions', 'Authenticated agent sessions open now.'))
  const sessionStarts = r.add(new Counter('warren_agent_session_starts_total', 'Agent sessions that authenticated.'))
  const sessionStops = r.add(new Counter('warren_agent_session_stops_total', 'Agent sessions that ended, by reason (goodbye, dropped).', ['reason']))
  const endpoints = r.add(new Gauge('warren_endpoints', 'Endpoints in the table, by type.', ['type']))
  const reloads = r.add(new Counter('warren_config_reloads_total', 'Reloads of the policies directory, by reason (start, watch, SIGHUP, api, cluster).', ['reason']))
  const reloadFailures = r.add(new Counter('warren_config_reload_failures_total', 'Reloads that found an invalid file or endpoint, by reason.', ['reason']))
  const certExpiry = r.add(new Gauge('warren_certificate_expiry_timestamp_seconds', 'When each certificate expires (Unix time), by its names and source (file, dev, acme).', ['names', 'source']))
  const events = r.add(new Counter('warren_events_total', 'Events published, by type.', ['type']))
  const poolRetries = r.add(new Counter('warren_pool_retries_total', 'HTTP requests sent again to another pool member after the first failed before answering, by endpoint URL and reason (session closed, no stream, stream refused, stream reset, stream closed).', ['endpoint', 'reason']))
  const tlsPaths = r.add(new Counter('warren_tls_connections_total', 'Connections the TLS port accepted, by path: inline (TLS terminated on the accepted socket) or relay (ClientHello read first, then relayed: passthrough, terminate-tls, or an internal TLS server).', ['path']))
  const relayed = r.add(new Counter('warren_http_relayed_requests_total', 'HTTP requests the plaintext listener and the HTTPS/1.1 engine relayed byte for byte (the fast path: no policy, or one that only reads the request head and edits its header lines); they count in warren_http_requests_total too.'))
  const clusterLocal = r.add(new Counter('warren_cluster_local_decisions_total', 'Decisions of scope: cluster rate-limit and circuit-breaker actions this node made alone because Redis did not answer in time (down, slow), by action type.', ['action']))
  const clusterEvents = r.add(new Counter('warren_cluster_events_total', 'Events relayed between cluster members for /events/stream: "sent" are this member\'s, sent while another member had a stream client; "received" are the others\', received while this member had one.', ['direction']))
  const dropped = r.add(new Counter('warren_events_dropped_total', 'Events dropped: "queue" when the event queue was full, "cluster" when this member\'s events could not be sent to the other members (link backed up, Redis away), else by sink.', ['sink']))

  // Requests are counted from tallies (src/events/bus.ts), with or without an event object: each
  // endpoint's series are looked up once, then every request is a few additions.
  let requestEvents: { value: number } | undefined
  const byEndpoint = new Map<string, EndpointSeries>()
  sources.bus.tapRequests(function countRequest(t: RequestTally) {
    ;(requestEvents ??= events.child({ type: 'http_request_complete.v0' })).value++
    let s = byEndpoint.get(t.endpoint)
    if (!s) byEndpoint.set(t.endpoint, (s = { endpoint: t.endpoint, latency: latency.child({ endpoint: t.endpoint }), byStatus: new Map() }))
    let status = s.byStatus.get(t.status)
    if (!status) s.byStatus.set(t.status, (status = requests.child({ endpoint: s.endpoint, status: String(t.status) })))
    status.value++
    latency.record(s.latency, t.durationMs / 1000)
    // Byte series appear with the first bytes, as they always did.
    if (t.requestBytes > 0) (s.requestBytes ??= requestBytes.child({ endpoint: s.endpoint })).value += t.requestBytes
    if (t.responseBytes > 0) (s.responseBytes ??= responseBytes.child({ endpoint: s.endpoint })).value += t.responseBytes
  })

  sources.bus.tap(function countEvent(event: WarrenEvent) {
    events.inc({ type: event.event_type })
    switch (event.event_type) {
      case 'tcp_connection_closed.v0': {
        const o = event.object
        const labels = { endpoint: o.endpoint?.url ?? '', protocol: o.protocol }
        connections.inc(labels)
        connectionBytes.inc({ ...labels, direction: 'in' }, o.conn.bytes_in)
        connectionBytes.inc({ ...labels, direction: 'out' }, o.conn.bytes_out)
        connectionTime.observe(labels, (Date.parse(o.conn.end_ts) - Date.parse(o.conn.start_ts)) / 1000)
        break
      }
      case 'agent_session_start.v0':
        sessionStarts.inc()
        break
      case 'agent_session_stop.v0':
        sessionStops.inc({ reason: event.object.reason })
        break
      case 'config_reload.v0':
        reloads.inc({ reason: event.object.reason })
        if (!event.object.ok) reloadFailures.inc({ reason: event.object.reason })
        break
    }
  }, { requests: false })

  r.collect(function readGauges() {
    if (sources.activeConnections) for (const [listener, n] of Object.entries(sources.activeConnections())) active.set({ listener }, n)
    if (sources.agentSessions) sessions.set({}, sources.agentSessions())
    if (sources.endpoints) {
      const list = sources.endpoints()
      endpoints.set({ type: 'cloud' }, list.filter((e) => e.kind === 'cloud').length)
      endpoints.set({ type: 'agent' }, list.filter((e) => e.kind === 'agent').length)
    }
    if (sources.certificates) {
      certExpiry.reset()
      for (const c of sources.certificates()) certExpiry.set({ names: c.names.join(','), source: c.source }, Math.floor(c.notAfter.getTime() / 1000))
    }
    dropped.set({ sink: 'queue' }, sources.bus.dropped)
    if (sources.sinkDrops) for (const s of sources.sinkDrops()) dropped.set({ sink: s.name }, s.dropped)
    if (sources.relayedRequests) relayed.set({}, sources.relayedRequests())
    if (sources.tlsConnections) for (const [path, n] of Object.entries(sources.tlsConnections())) tlsPaths.set({ path }, n)
    if (sources.clusterLocalDecisions) for (const [action, n] of Object.entries(sources.clusterLocalDecisions())) clusterLocal.set({ action }, n)
    if (sources.clusterEvents) {
      const counts = sources.clusterEvents()
      clusterEvents.set({ direction: 'sent' }, counts.sent)
      clusterEvents.set({ direction: 'received' }, counts.received)
    }
    if (sources.poolRetries) for (const p of sources.poolRetries()) poolRetries.set({ endpoint: p.endpoint, reason: p.reason }, p.count)
  })
  return r
}
