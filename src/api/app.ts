import { Hono } from 'hono'
import type { LoadOptions } from '../config/load.ts'
import type { EndpointStore } from '../endpoints/store.ts'
import { CODES } from '../lib/errors.ts'
import { log } from '../lib/log.ts'
import { bearerAuth, keyDigests } from './auth.ts'
import { ApiError, errorResponse } from './errors.ts'
import { endpointRoutes } from './routes/endpoints.ts'
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
}

/**
 * The REST API as a Hono app: `/endpoints` (ngrok-shaped), `/status`, `/openapi.json`, and the
 * unauthenticated `/healthz` and `/readyz`.
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
  app.use('*', bearerAuth(digests))
  app.route('/', openapiRoutes())
  app.route('/status', statusRoutes(options))
  app.route('/endpoints', endpointRoutes(options))
  return app
}

export interface StartApiOptions extends ApiOptions {
  hostname: string
  port: number
}

/**
 * Serves the API on `hostname:port` (listen.api). Refuses to start on malformed `api_keys`; warns
 * when there are none, because then every request but the health checks gets 401.
 */
export function startApi(options: StartApiOptions): { port: number; stop(): Promise<void> } {
  const apiLog = log.child({ component: 'api' })
  const app = createApp(options)
  // Bun.serve is used here rather than in listeners/: the API is a plain Hono app on its own port.
  const server = Bun.serve({ hostname: options.hostname, port: options.port, fetch: app.fetch, maxRequestBodySize: 1024 * 1024 })
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
