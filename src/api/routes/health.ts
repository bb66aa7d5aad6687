import { Hono } from 'hono'
import type { EndpointStore } from '../../endpoints/store.ts'

/** `/healthz` (the process answers) and `/readyz` (the first policies load finished); no key needed. */
export function healthRoutes(options: { store: EndpointStore }): Hono {
  const app = new Hono()
  app.get('/healthz', (c) => c.json({ status: 'ok' }))
  app.get('/readyz', (c) => {
    // The first reload swaps in version 1; the empty table before it is version 0.
    const version = options.store.current.version
    return version > 0 ? c.json({ status: 'ready', version }) : c.json({ status: 'loading', version }, 503)
  })
  return app
}
