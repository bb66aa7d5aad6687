import { Hono } from 'hono'
import { CONTENT_TYPE } from '../../metrics/prometheus.ts'

/** `/metrics`: Prometheus text exposition of the edge's metrics. */
export function metricsRoutes(options: { metrics: { render(): string } }): Hono {
  const app = new Hono()
  app.get('/', (c) => c.body(options.metrics.render(), 200, { 'content-type': CONTENT_TYPE }))
  return app
}
