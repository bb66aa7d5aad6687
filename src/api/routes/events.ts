import type { Server } from 'bun'
import { Hono } from 'hono'
import { streamSSE } from 'hono/streaming'
import type { ClusterEvents } from '../../cluster/event-relay.ts'
import type { EventBus } from '../../events/bus.ts'
import { compileEventFilter, type EventFilter } from '../../events/filter.ts'
import { eventOrigin, type WarrenEvent } from '../../events/types.ts'
import { CODES } from '../../lib/errors.ts'
import { ApiError } from '../errors.ts'

/** Events one slow stream may have waiting; beyond it they are dropped and the client is told. */
const STREAM_BUFFER = 1000
/** A comment line this often keeps proxies and the client from timing the stream out. */
const KEEPALIVE_MS = 15_000

/**
 * `/events/stream`: live events as server-sent events (`event:` the event type, `id:` the event id,
 * `data:` the event as JSON). `?filter=` is a CEL expression over `ev` (the event's object) and
 * `event_type`, as in ngrok's event filters. The first message is `ready`; a `dropped` message
 * says how many events this client missed because it read too slowly. In a cluster (`cluster`) the
 * stream carries every member's events, and a `cluster` message says when the others' stop arriving
 * (Redis away) and when they come again.
 */
export function eventRoutes(options: { events: EventBus; cluster?: ClusterEvents | undefined }): Hono {
  const app = new Hono()
  app.get('/stream', (c) => {
    const text = c.req.query('filter')
    let filter: EventFilter | undefined
    if (text !== undefined && text.trim() !== '') {
      const compiled = compileEventFilter(text)
      if ('error' in compiled) throw new ApiError(CODES.API_BAD_REQUEST, 400, `filter: ${compiled.error}`, { field: 'filter' })
      filter = compiled.filter
    }
    // Bun closes a connection idle for 10 s; this one is quiet between events by design.
    ;(c.env as Server<unknown> | undefined)?.timeout?.(c.req.raw, 0)
    return streamSSE(c, async (stream) => {
      let queue: WarrenEvent[] = []
      let dropped = 0
      let wake: (() => void) | undefined
      let open = true
      const { cluster } = options
      /** The others' events arrive (true) or not (false), still to be told to the client. */
      let reach: boolean | undefined = cluster && !cluster.reachable ? false : undefined
      const offReach = cluster?.onReachable((ok) => {
        reach = ok
        wake?.()
      })
      const off = (cluster ?? options.events).subscribe((batch) => {
        for (const event of batch) {
          if (filter && !filter(event)) continue
          if (queue.length >= STREAM_BUFFER) dropped++
          else queue.push(event)
        }
        if (queue.length || dropped) wake?.()
      })
      stream.onAbort(() => {
        open = false
        off()
        offReach?.()
        wake?.()
      })
      try {
        await stream.writeSSE({ event: 'ready', data: JSON.stringify({ filter: text ?? null, ...eventOrigin() }) })
        while (open) {
          if (reach !== undefined) {
            const ok = reach
            reach = undefined
            await stream.writeSSE({ event: 'cluster', data: JSON.stringify(ok ? { complete: true } : { complete: false, message: "Redis is unreachable: other nodes' events are missing until it returns" }) })
            continue
          }
          if (!queue.length && !dropped) {
            let timer: ReturnType<typeof setTimeout> | undefined
            const woken = await new Promise<boolean>((resolve) => {
              wake = () => resolve(true)
              timer = setTimeout(() => resolve(false), KEEPALIVE_MS)
            })
            clearTimeout(timer)
            wake = undefined
            if (!woken && open) await stream.write(': keepalive\n\n')
            continue
          }
          const batch = queue
          queue = []
          for (const event of batch) {
            if (!open) break
            await stream.writeSSE({ id: event.event_id, event: event.event_type, data: JSON.stringify(event) })
          }
          if (dropped && open) {
            const n = dropped
            dropped = 0
            await stream.writeSSE({ event: 'dropped', data: JSON.stringify({ dropped: n }) })
          }
        }
      } finally {
        off()
        offReach?.()
      }
    })
  })
  return app
}
