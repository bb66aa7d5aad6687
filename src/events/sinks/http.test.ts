import { afterEach, describe, expect, test } from 'bun:test'
import { configureLogging, log } from '../../lib/log.ts'
import { makeEvent, type WarrenEvent } from '../types.ts'
import { HttpSink, type HttpSinkOptions } from './http.ts'

configureLogging({ level: 'error' })

function events(n: number): WarrenEvent[] {
  return Array.from({ length: n }, (_, i) => makeEvent('config_reload.v0', { reason: `r${i}`, version: i, ok: true, endpoints: 0, changed: [], errors: [] }))
}

/** A receiver that answers with the next status of `statuses` (then 200) and records the batches. */
function receiver(statuses: number[] = []) {
  const batches: WarrenEvent[][] = []
  const headers: Headers[] = []
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      const status = statuses.shift() ?? 200
      headers.push(req.headers)
      const body = (await req.json()) as WarrenEvent[]
      if (status === 200) batches.push(body)
      return new Response(null, { status })
    },
  })
  return { url: `http://127.0.0.1:${server.port}/ingest`, batches, headers, stop: () => server.stop(true) }
}

const servers: { stop(): void }[] = []
afterEach(() => {
  for (const s of servers.splice(0)) s.stop()
})

function sink(url: string, extra: Partial<HttpSinkOptions> = {}): HttpSink {
  return new HttpSink({ url, headers: { authorization: 'Bearer t' }, batchSize: 10, flushIntervalMs: 20, maxRetries: 3, timeoutMs: 2000, buffer: 1000, log, backoffMs: () => 5, ...extra })
}

describe('HttpSink', () => {
  test('POSTs JSON arrays of at most batch_size events, with the configured headers', async () => {
    const r = receiver()
    servers.push(r)
    const s = sink(r.url)
    const all = events(25)
    s.accept(all)
    await s.idle()
    expect(r.batches.map((b) => b.length)).toEqual([10, 10, 5])
    expect(r.batches.flat().map((e) => e.event_id)).toEqual(all.map((e) => e.event_id))
    expect(r.headers[0]!.get('authorization')).toBe('Bearer t')
    expect(r.headers[0]!.get('content-type')).toBe('application/json')
    expect(s.sent).toBe(25)
  })

  test('a partial batch goes out after flush_interval', async () => {
    const r = receiver()
    servers.push(r)
    const s = sink(r.url, { flushIntervalMs: 30 })
    s.accept(events(3))
    await Bun.sleep(5)
    expect(r.batches.length).toBe(0)
    await Bun.sleep(80)
    expect(r.batches.map((b) => b.length)).toEqual([3])
  })

  test('429 and 5xx are retried with backoff; the batch arrives once', async () => {
    const r = receiver([503, 429, 500])
    servers.push(r)
    const s = sink(r.url)
    s.accept(events(2))
    await s.idle()
    expect(r.batches.map((b) => b.length)).toEqual([2])
    expect(s.dropped).toBe(0)
  })

  test('after max_retries the batch is dropped and counted; a 400 is not retried', async () => {
    const r = receiver([500, 500, 500, 500, 400])
    servers.push(r)
    const s = sink(r.url, { maxRetries: 3 })
    s.accept(events(4))
    await s.idle()
    expect(s.dropped).toBe(4)
    s.accept(events(1))
    await s.idle()
    expect(s.dropped).toBe(5)
    expect(r.headers.length).toBe(5)
  })

  test('an unreachable receiver is retried, then dropped; the buffer bound drops the overflow', async () => {
    const s = sink('http://127.0.0.1:9/ingest', { maxRetries: 1, buffer: 5, batchSize: 100, flushIntervalMs: 1000 })
    s.accept(events(8))
    expect(s.dropped).toBe(3)
    await s.idle()
    expect(s.dropped).toBe(8)
  })

  test('close() sends what is queued', async () => {
    const r = receiver()
    servers.push(r)
    const s = sink(r.url, { flushIntervalMs: 60_000 })
    s.accept(events(3))
    await s.close()
    expect(r.batches.flat().length).toBe(3)
  })
})
