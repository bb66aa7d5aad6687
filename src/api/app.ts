import { Hono } from 'hono'
import type { LoadOptions } from '../config/load.ts'
import type { EndpointStore } from '../endpoints/store.ts'
import type { ClusterEvents } from '../cluster/event-relay.ts'
import { EventBus } from '../events/bus.ts'
import { CODES } from '../lib/errors.ts'
import { log } from '../lib/log.ts'
import { edgeMetrics } from '../metrics/edge.ts'
import { bearerAuth, keyDigests } from './auth.ts'
import { ApiError, errorResponse } from './errors.ts'
import { certificateRoutes, type CertificateInfo } from './routes/certificates.ts'
import { dashboardRoutes } from './routes/dashboard.ts'
import { endpointRoutes } from './routes/endpoints.ts'
import { eventRoutes } from './routes/events.ts'
import { metricsRoutes } from './routes/metrics.ts'
import { sessionRoutes, type AgentTunnelInfo, type SessionControl } from './routes/sessions.ts'
import { healthRoutes } from './routes/health.ts'
import { openapiRoutes } from './routes/openapi.ts'
import { statusRoutes } from './routes/status.ts'

export interface ApiOptions {
  /** Bearer keys (plain or `sha256:<hex>`). None: everything but /healthz and /readyz answers 401. */
  apiKeys: readonly string[]
  /** The edge's endpoint table and load status. */
  store: EndpointStore
  /** Absolute policies directory: API-created endpoints are stored there as `api-<id>.yml`. */
  policiesDir: string
  /** The options the edge loads policies files with, so a candidate validates exactly as it will load. */
  loadOptions: LoadOptions
  /**
   * Re-reads the policies directory into `store` synchronously (the edge's hot-reload path, which
   * also reconciles listeners). Called after every write, so an answer reflects what now serves.
   */
  reload(reason: string): void
  /** The edge's event bus, for `/events/stream` (an idle bus when omitted). */
  events?: EventBus
  /** Every cluster member's events, for `/events/stream` on a worker of `--workers N` or a node of a cluster. */
  clusterEvents?: ClusterEvents | undefined
  /** Renders `/metrics` (the edge's registry; a bare one over `events` when omitted). */
  metrics?: { render(): string }
  /** Agent sessions connected now (`/tunnel-sessions`; none when omitted). */
  sessions?: () => Iterable<SessionControl>
  /** Agent endpoints and the session serving each (the agent registry's list). */
  tunnels?: () => readonly AgentTunnelInfo[]
  /** Certificates the edge holds (`/certificates`; none when omitted). */
  certificates?: () => readonly CertificateInfo[]
}

/**
 * The REST API as a Hono app: `/endpoints` (ngrok-shaped), `/tunnel-sessions`, `/certificates`,
 * `/status`, `/metrics`, `/events/stream`, `/openapi.json`, and without a key `/healthz`, `/readyz`
 * and the dashboard page `/ui` (which reads the rest with the key the user gives it).
 *
 * @example
 * const app = createApp({ apiKeys: ['secret'], store, policiesDir, loadOptions, reload })
 * await app.request('/endpoints', { headers: { authorization: 'Bearer secret' } })
 */
export function createApp(options: ApiOptions): Hono {
  const digests = keyDigests(options.apiKeys)
  const app = new Hono()
  app.onError((err, c) => errorResponse(c, err))
  app.notFound((c) => errorResponse(c, new ApiError(CODES.API_NOT_FOUND, 404, `No route ${c.req.method} ${c.req.path}`)))
  // Health checks come before the key check: load balancers and orchestrators hold no key.
  app.route('/', healthRoutes(options))
  app.route('/', dashboardRoutes())
  app.use('*', bearerAuth(digests))
  const events = options.events ?? new EventBus()
  const tunnels = options.tunnels ?? (() => [])
  app.route('/', openapiRoutes())
  app.route('/status', statusRoutes(options))
  app.route('/endpoints', endpointRoutes({ ...options, tunnels }))
  app.route('/tunnel-sessions', sessionRoutes({ sessions: options.sessions ?? (() => []), tunnels }))
  app.route('/certificates', certificateRoutes({ certificates: options.certificates ?? (() => []) }))
  app.route('/metrics', metricsRoutes({ metrics: options.metrics ?? edgeMetrics({ bus: events }) }))
  app.route('/events', eventRoutes({ events, cluster: options.clusterEvents }))
  return app
}

export interface StartApiOptions extends ApiOptions {
  hostname: string
  port: number
  /** SO_REUSEPORT: the worker processes of `warren serve --workers` listen on the same port. */
  reusePort?: boolean
}

/**
 * Serves the API on `hostname:port` (listen.api). Refuses to start on malformed `api_keys`; warns
 * when there are none, because then every request but the health checks gets 401.
 */
export function startApi(options: StartApiOptions): { port: number; stop(): Promise<void> } {
  const apiLog = log.child({ component: 'api' })
  const app = createApp(options)
  // Bun.serve is used here rather than in listeners/: the API is a plain Hono app on its own port.
  const server = Bun.serve({ hostname: options.hostname, port: options.port, ...(options.reusePort ? { reusePort: true } : {}), fetch: app.fetch, maxRequestBodySize: 1024 * 1024 })
  const port = server.port ?? options.port
  if (options.apiKeys.length === 0)
    apiLog.warn('REST API has no api_keys: every request except /healthz and /readyz gets 401', { api: `${options.hostname}:${port}` })
  apiLog.info('REST API listening', { api: `${options.hostname}:${port}` })
  return {
    port,
    async stop() {
      await server.stop(true)
    },
  }
}
