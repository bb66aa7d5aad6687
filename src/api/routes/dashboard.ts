import { Hono } from 'hono'
// Embedded in the compiled binary as text: the page is one self-contained file (styles and script inline).
import page from '../ui/index.html' with { type: 'text' }

const INDEX = page as unknown as string

/**
 * `/ui`: the read-only dashboard (endpoints, tunnel sessions, certificates, live events). The page
 * holds no data; its script reads the API with a key the user enters, so it is served without one.
 */
export function dashboardRoutes(): Hono {
  const app = new Hono()
  app.get('/', (c) => c.redirect('/ui', 302))
  app.get('/ui', (c) => {
    c.header('cache-control', 'no-store')
    c.header('x-content-type-options', 'nosniff')
    c.header('x-frame-options', 'DENY')
    c.header('referrer-policy', 'no-referrer')
    return c.html(INDEX)
  })
  return app
}
