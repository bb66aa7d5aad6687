import { describe, expect, test } from 'bun:test'
import { EventBus } from './bus.ts'
import { makeEvent, type RequestTally, type WarrenEvent } from './types.ts'

function reload(reason = 'watch'): WarrenEvent {
  return makeEvent('config_reload.v0', { reason, version: 1, ok: true, endpoints: 0, changed: [], errors: [] })
}

describe('EventBus', () => {
  test('emit() runs taps inline and delivers to subscribers on a later turn, in order', async () => {
    const bus = new EventBus()
    const tapped: string[] = []
    const got: string[] = []
    bus.tap((e) => tapped.push(e.event_id))
    bus.subscribe((batch) => got.push(...batch.map((e) => e.event_id)))
    const a = reload()
    const b = reload()
    bus.emit(a)
    bus.emit(b)
    expect(tapped).toEqual([a.event_id, b.event_id])
    expect(got).toEqual([])
    await Bun.sleep(1)
    expect(got).toEqual([a.event_id, b.event_id])
    expect(bus.emitted).toBe(2)
  })

  test('countRequest() counts without an event only while nothing reads request events', () => {
    const bus = new EventBus()
    const counted: number[] = []
    const others: string[] = []
    bus.tapRequests((t) => counted.push(t.status))
    bus.tap((e) => others.push(e.event_type), { requests: false })
    const tally = { endpoint: '', endpointId: '', method: 'GET', path: '/', status: 200, durationMs: 1, requestBytes: 0, responseBytes: 0 }
    expect(bus.countRequest(tally)).toBe(true)
    bus.emit(reload())
    // A tap of every event reads request events: the caller must build one.
    const off = bus.tap(() => {})
    expect(bus.countRequest(tally)).toBe(false)
    off()
    const unsubscribe = bus.subscribe(() => {})
    expect(bus.countRequest(tally)).toBe(false)
    unsubscribe()
    expect(bus.countRequest({ ...tally, status: 201 })).toBe(true)
    expect(counted).toEqual([200, 201])
    expect(others).toEqual(['config_reload.v0'])
  })

  test('an emitted request event reaches the request taps as a tally with its endpoint id, method and path', () => {
    const bus = new EventBus()
    const tallies: RequestTally[] = []
    bus.tapRequests((t) => tallies.push({ ...t }))
    const conn = { client_ip: '192.168.1.9', client_port: 1, server_ip: '127.0.0.1', server_name: 'api.example.com', server_port: 80, start_ts: '2026-01-01T00:00:00.000Z' }
    const request = (query: string) =>
      makeEvent('http_request_complete.v0', {
        conn,
        http: {
          request: { method: 'POST', url: { scheme: 'http', host: 'api.example.com', path: '/v1/users', query, raw: '' }, user_agent: '', body_length: 12 },
          response: { status_code: 503, body_length: -1 },
        },
        endpoint: { id: 'ep_7', url: 'http://api.example.com', type: 'agent' },
        duration_ms: 3,
        error_code: null,
        traffic_policy: null,
      })
    bus.emit(request('a=1'))
    bus.emit(request(''))
    expect(tallies).toEqual([
      { endpoint: 'http://api.example.com', endpointId: 'ep_7', method: 'POST', path: '/v1/users?a=1', status: 503, durationMs: 3, requestBytes: 12, responseBytes: -1 },
      { endpoint: 'http://api.example.com', endpointId: 'ep_7', method: 'POST', path: '/v1/users', status: 503, durationMs: 3, requestBytes: 12, responseBytes: -1 },
    ])
  })

  test('a full queue drops new events and counts them', () => {
    const bus = new EventBus({ capacity: 3 })
    const got: WarrenEvent[] = []
    bus.subscribe((batch) => got.push(...batch))
    for (let i = 0; i < 5; i++) bus.emit(reload(String(i)))
    expect(bus.pending).toBe(3)
    expect(bus.dropped).toBe(2)
    bus.flush()
    expect(got.map((e) => (e.object as { reason: string }).reason)).toEqual(['0', '1', '2'])
    bus.emit(reload('5'))
    expect(bus.pending).toBe(1)
  })

  test('without subscribers nothing is queued (taps still see every event)', () => {
    const bus = new EventBus({ capacity: 1 })
    let seen = 0
    bus.tap(() => seen++)
    for (let i = 0; i < 10; i++) bus.emit(reload())
    expect(seen).toBe(10)
    expect(bus.pending).toBe(0)
    expect(bus.dropped).toBe(0)
  })

  test('a throwing tap or subscriber is reported and does not stop the others', () => {
    const errors: unknown[] = []
    const bus = new EventBus({ onError: (e) => errors.push(e) })
    let tapped = 0
    let delivered = 0
    bus.tap(() => {
      throw new Error('tap')
    })
    bus.tap(() => tapped++)
    bus.subscribe(() => {
      throw new Error('subscriber')
    })
    bus.subscribe((batch) => (delivered += batch.length))
    expect(() => bus.emit(reload())).not.toThrow()
    bus.flush()
    expect(tapped).toBe(1)
    expect(delivered).toBe(1)
    expect(errors.map((e) => (e as Error).message)).toEqual(['tap', 'subscriber'])
  })

  test('unsubscribe stops delivery; event ids are unique and ordered', () => {
    const bus = new EventBus()
    let n = 0
    const off = bus.subscribe((batch) => (n += batch.length))
    off()
    bus.emit(reload())
    bus.flush()
    expect(n).toBe(0)
    const ids = Array.from({ length: 1000 }, () => reload().event_id)
    expect(new Set(ids).size).toBe(1000)
    expect([...ids].sort()).toEqual(ids)
    expect(ids[0]).toMatch(/^ev_[0-9a-z]+$/)
  })
})
