import { Hono } from 'hono'
import type { EndpointStore } from '../../endpoints/store.ts'

/** `/status`: load status of every policies file and declared endpoint, as of the last reload. */
export function statusRoutes(options: { store: EndpointStore }): Hono {
  const app = new Hono()
  app.get('/', (c) => {
    const { files, endpoints } = options.store.status
    const table = options.store.current
    return c.json({ ready: table.version > 0, version: table.version, serving: table.endpoints.length, files, endpoints })
  })
  return app
}
