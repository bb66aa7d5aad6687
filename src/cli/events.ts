import { dirname, resolve } from 'node:path'
import type { ResolvedConfig } from '../config/server.ts'
import { EventBus } from '../events/bus.ts'
import { startSinks, type RunningSink } from '../events/sinks/index.ts'
import { log } from '../lib/log.ts'

/**
 * The edge's event bus and the sinks of `events:` in warren.yaml. Throws a config error (before
 * anything listens) when a sink's filter does not compile or its file cannot be opened. A worker of
 * `--workers N` (`worker`) writes its own `file` sinks (src/events/sinks/index.ts, workerFilePath).
 */
export function startEvents(config: ResolvedConfig, options: { worker?: number } = {}): { bus: EventBus; sinks: RunningSink[]; close(): Promise<void> } {
  const eventsLog = log.child({ component: 'events' })
  let reported = 0
  const bus = new EventBus({
    capacity: config.events.queue_size,
    onError(err) {
      // A broken subscriber must not flood the log: report the first few.
      if (reported++ < 5) eventsLog.error('event subscriber failed', { error: err instanceof Error ? (err.stack ?? err.message) : String(err) })
    },
  })
  const baseDir = config.source ? dirname(resolve(config.source)) : process.cwd()
  const sinks = startSinks(bus, config.events.sinks, { baseDir, log: eventsLog, worker: options.worker })
  if (sinks.length) eventsLog.info('event sinks started', { sinks: sinks.map((s) => s.name) })
  return {
    bus,
    sinks,
    async close() {
      bus.flush()
      await Promise.all(sinks.map((s) => s.close().catch(() => {})))
    },
  }
}
