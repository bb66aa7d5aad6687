import { basename, dirname, extname, join, resolve } from 'node:path'
import type { EventSinkConfig } from '../../config/schema/v1/server.ts'
import { CODES, WarrenError } from '../../lib/errors.ts'
import type { Logger } from '../../lib/log.ts'
import type { EventBus } from '../bus.ts'
import { compileEventFilter, type EventFilter } from '../filter.ts'
import type { WarrenEvent } from '../types.ts'
import { FileSink } from './file.ts'
import { HttpSink } from './http.ts'
import { stdoutSink } from './stdout.ts'

/** A running sink, for metrics and shutdown. */
export interface RunningSink {
  /** `stdout`, `file:<path>` or `http:<url>`. */
  name: string
  /** Events the sink itself dropped (its buffer was full, or delivery failed for good). */
  dropped(): number
  close(): Promise<void>
}

/** Keeps the events a sink asked for: its `types` and its `filter`. */
function selector(config: EventSinkConfig, index: number): (batch: readonly WarrenEvent[]) => readonly WarrenEvent[] {
  const types = config.types ? new Set<string>(config.types) : undefined
  let filter: EventFilter | undefined
  if (config.filter !== undefined) {
    const compiled = compileEventFilter(config.filter)
    if ('error' in compiled) throw new WarrenError(CODES.CONFIG_INVALID, `events.sinks[${index}].filter: ${compiled.error}`)
    filter = compiled.filter
  }
  if (!types && !filter) return (batch) => batch
  return (batch) => batch.filter((e) => (!types || types.has(e.event_type)) && (!filter || filter(e)))
}

/**
 * The file a worker of `warren serve --workers N` writes a `file` sink's events to: `events.jsonl` →
 * `events.w2.jsonl`. Each worker has its own file because each rotates by its own size count: workers
 * sharing one file would rename it under one another (lines of one landing in another's rotated copy).
 *
 * @example workerFilePath('/var/log/warren/events.jsonl', 2) // '/var/log/warren/events.w2.jsonl'
 */
export function workerFilePath(path: string, worker: number): string {
  const ext = extname(path)
  return join(dirname(path), `${basename(path, ext)}.w${worker}${ext}`)
}

/**
 * Starts the sinks of `events.sinks` on the bus. Validates everything first (filters, file paths),
 * so a bad sink stops the edge at start with a config error instead of silently losing events.
 *
 * @example
 * const sinks = startSinks(bus, config.events.sinks, { baseDir, log })
 * await Promise.all(sinks.map((s) => s.close()))
 */
export function startSinks(bus: EventBus, configs: readonly EventSinkConfig[], options: { baseDir: string; log: Logger; worker?: number | undefined }): RunningSink[] {
  const running: RunningSink[] = []
  configs.forEach((config, i) => {
    const select = selector(config, i)
    const log = options.log.child({ sink: config.type })
    if (config.type === 'stdout') {
      const write = stdoutSink()
      const off = bus.subscribe((batch) => {
        const chosen = select(batch)
        if (chosen.length) write(chosen)
      })
      running.push({ name: 'stdout', dropped: () => 0, close: async () => void off() })
    } else if (config.type === 'file') {
      const configured = resolve(options.baseDir, config.path)
      const path = options.worker === undefined ? configured : workerFilePath(configured, options.worker)
      let sink: FileSink
      try {
        sink = new FileSink({ path, maxBytes: config.max_bytes, maxFiles: config.max_files, bufferBytes: config.buffer_bytes, log })
      } catch (err) {
        throw new WarrenError(CODES.CONFIG_INVALID, `events.sinks[${i}]: cannot open the event file "${path}": ${(err as Error).message}`)
      }
      const off = bus.subscribe((batch) => {
        const chosen = select(batch)
        if (chosen.length) sink.accept(chosen)
      })
      running.push({
        name: `file:${path}`,
        dropped: () => sink.dropped,
        async close() {
          off()
          await sink.close()
        },
      })
    } else {
      const sink = new HttpSink({
        url: config.url,
        headers: config.headers,
        batchSize: config.batch_size,
        flushIntervalMs: config.flush_interval * 1000,
        maxRetries: config.max_retries,
        timeoutMs: config.timeout * 1000,
        buffer: config.buffer,
        log,
      })
      const off = bus.subscribe((batch) => {
        const chosen = select(batch)
        if (chosen.length) sink.accept(chosen)
      })
      running.push({
        name: `http:${config.url}`,
        dropped: () => sink.dropped,
        async close() {
          off()
          await sink.close()
        },
      })
    }
  })
  return running
}
