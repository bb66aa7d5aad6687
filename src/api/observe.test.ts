import { afterEach, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EndpointStore } from '../endpoints/store.ts'
import { EventBus } from '../events/bus.ts'
import { makeEvent, type WarrenEvent } from '../events/types.ts'
import { StreamType } from '../tunnel/proto/messages.ts'
import { createApp, type ApiOptions } from './app.ts'
import type { SessionControl } from './routes/sessions.ts'
import { KEY, LOAD_OPTIONS } from './test-helpers.ts'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

class FakeSession implements SessionControl {
  readonly account: { name: string } | undefined
  readonly remoteAddr = '127.0.0.1:50123'
  connectedAt = Date.parse('2026-01-02T03:04:05.000Z')
  readonly clientInfo = { OS: 'linux', Version: '1.7.0', ClientType: 'ngrok-javascript', Metadata: 'm' }
  latencyMs: number | undefined = 12
  mux = { closed: false }
  closedWith: string | undefined
  commands: number[] = []
  constructor(
    readonly id: string,
    account: string | undefined,
    readonly reply: unknown = {},
  ) {
    this.account = account === undefined ? undefined : { name: account }
  }
  close(message?: string) {
    this.closedWith = message
    this.mux.closed = true
  }
  command(type: number): Promise<unknown> {
    this.commands.push(type)
    return Promise.resolve(this.reply)
  }
}

function app(extra: Partial<ApiOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'warren-api-observe-'))
  dirs.push(dir)
  const a = createApp({ apiKeys: [KEY], store: new EndpointStore(), policiesDir: dir, loadOptions: LOAD_OPTIONS, reload: () => {}, ...extra })
  const call = (method: string, path: string, key: string | null = KEY) =>
    Promise.resolve(a.request(`http://127.0.0.1:4041${path}`, { method, headers: key === null ? {} : { authorization: `Bearer ${key}` } }))
  return { app: a, call }
}

function reload(reason: string): WarrenEvent {
  return makeEvent('config_reload.v0', { reason, version: 1, ok: true, endpoints: 0, changed: [], errors: [] })
}

/** Reads server-sent events from a response until `count` messages (after `ready`) arrived. */
async function readEvents(res: Response, count: number): Promise<{ event: string; id?: string; data: any }[]> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
  const got: { event: string; id?: string; data: any }[] = []
  let buffer = ''
  while (got.length < count + 1) {
    const { value, done } = await reader.read()
    if (done) break
    buffer += value
    let end
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const msg: { event: string; id?: string; data: any } = { event: 'message', data: undefined }
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) msg.event = line.slice(7)
        if (line.startsWith('id: ')) msg.id = line.slice(4)
        if (line.startsWith('data: ')) msg.data = JSON.parse(line.slice(6))
      }
      if (!block.startsWith(':')) got.push(msg)
    }
  }
  await reader.cancel()
  return got
}

describe('/tunnel-sessions', () => {
  const sessions = () => [new FakeSession('s1', 'alice'), new FakeSession('', undefined), new FakeSession('s2', 'bob', { Error: 'restart is not supported' })]

  test('lists authenticated sessions with their endpoints; get one; 404 for unknown', async () => {
    const live = sessions()
    const { call } = app({ sessions: () => live, tunnels: () => [{ id: 'tn_1', url: 'https://x.warren.localhost', account: 'alice', online: true, session: 's1' }] })
    const res = await call('GET', '/tunnel-sessions')
    expect(res.status).toBe(200)
    const body: any = await res.json()
    expect(body.tunnel_sessions.map((s: { id: string }) => s.id)).toEqual(['s1', 's2'])
    expect(body.tunnel_sessions[0]).toEqual({
      id: 's1',
      uri: 'http://127.0.0.1:4041/tunnel-sessions/s1',
      agent_version: '1.7.0',
      os: 'linux',
      ip: '127.0.0.1',
      metadata: 'm',
      started_at: '2026-01-02T03:04:05.000Z',
      account: 'alice',
      remote_addr: '127.0.0.1:50123',
      client_info: { OS: 'linux', Version: '1.7.0', ClientType: 'ngrok-javascript', Metadata: 'm' },
      latency_ms: 12,
      endpoints: [{ id: 'ep_tn_1', uri: 'http://127.0.0.1:4041/endpoints/ep_tn_1', url: 'https://x.warren.localhost' }],
    })
    expect(((await (await call('GET', '/tunnel-sessions/s2')).json()) as any).account).toBe('bob')
    const missing = await call('GET', '/tunnel-sessions/nope')
    expect(missing.status).toBe(404)
    expect(((await missing.json()) as any).error_code).toBe('ERR_WARREN_6003')
  })

  test('stop closes the session (204) and it leaves the list', async () => {
    const live = sessions()
    const { call } = app({ sessions: () => live })
    expect((await call('POST', '/tunnel-sessions/s1/stop')).status).toBe(204)
    expect(live[0]!.closedWith).toBe('stopped through the API')
    const body: any = await (await call('GET', '/tunnel-sessions')).json()
    expect(body.tunnel_sessions.map((s: { id: string }) => s.id)).toEqual(['s2'])
    expect((await call('POST', '/tunnel-sessions/s1/stop')).status).toBe(404)
  })

  test('an id held twice (the agent resumed it before its old connection was seen to close): the newest is listed and takes the commands', async () => {
    const stale = new FakeSession('s1', 'alice')
    const resumed = new FakeSession('s1', 'alice')
    resumed.connectedAt = stale.connectedAt + 1000
    const { call } = app({ sessions: () => [stale, resumed] })
    const body: any = await (await call('GET', '/tunnel-sessions')).json()
    expect(body.tunnel_sessions.map((s: { started_at: string }) => s.started_at)).toEqual(['2026-01-02T03:04:06.000Z'])
    expect((await call('POST', '/tunnel-sessions/s1/restart')).status).toBe(204)
    expect((await call('POST', '/tunnel-sessions/s1/stop')).status).toBe(204)
    expect({ stale: [stale.commands, stale.closedWith], resumed: [resumed.commands, resumed.closedWith] }).toEqual({
      stale: [[], undefined],
      resumed: [[StreamType.RESTART], 'stopped through the API'],
    })
  })

  test('restart sends the Restart command; an agent that refuses gives 502 ERR_WARREN_6010', async () => {
    const live = sessions()
    const { call } = app({ sessions: () => live })
    expect((await call('POST', '/tunnel-sessions/s1/restart')).status).toBe(204)
    expect(live[0]!.commands).toEqual([StreamType.RESTART])
    const refused = await call('POST', '/tunnel-sessions/s2/restart')
    expect(refused.status).toBe(502)
    expect(await refused.json()).toMatchObject({ error_code: 'ERR_WARREN_6010', msg: 'The agent did not restart: restart is not supported' })
  })

  test('wrong methods are 405; no key is 401', async () => {
    const { call } = app({ sessions: sessions })
    expect((await call('GET', '/tunnel-sessions/s1/stop')).status).toBe(405)
    expect((await call('DELETE', '/tunnel-sessions')).status).toBe(405)
    expect((await call('GET', '/tunnel-sessions', null)).status).toBe(401)
  })
})

describe('/certificates, /metrics, /ui', () => {
  test('/certificates lists names, source and expiry, soonest first, never keys', async () => {
    const soon = new Date(Date.now() + 3600_000)
    const later = new Date(Date.now() + 90 * 86400_000)
    const { call } = app({
      certificates: () => [
        { names: ['b.example.com'], notAfter: later, issuer: 'CN=CA', source: 'file', cert: 'PEM', key: 'SECRET' } as never,
        { names: ['a.example.com'], notAfter: soon, issuer: 'CN=dev', source: 'dev' },
      ],
    })
    const text = await (await call('GET', '/certificates')).text()
    expect(text).not.toContain('SECRET')
    const body = JSON.parse(text)
    expect(body.certificates.map((c: { names: string[] }) => c.names[0])).toEqual(['a.example.com', 'b.example.com'])
    expect(body.certificates[0]).toMatchObject({ source: 'dev', issuer: 'CN=dev', not_after: soon.toISOString(), expired: false })
    expect(body.certificates[0].expires_in_seconds).toBeGreaterThan(3500)
  })

  test('/metrics is Prometheus text and needs the key', async () => {
    const { call } = app({ metrics: { render: () => 'warren_x 1\n' } })
    const res = await call('GET', '/metrics')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
    expect(await res.text()).toBe('warren_x 1\n')
    expect((await call('GET', '/metrics', null)).status).toBe(401)
  })

  test('/ui is served without a key (it holds no data); / redirects there', async () => {
    const { call } = app()
    const res = await call('GET', '/ui', null)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('text/html')
    expect(await res.text()).toContain('<title>warren edge</title>')
    const root = await call('GET', '/', null)
    expect(root.status).toBe(302)
    expect(root.headers.get('location')).toBe('/ui')
  })
})

describe('/events/stream', () => {
  test('streams events as SSE (event type, id, JSON data) after a ready message', async () => {
    const bus = new EventBus()
    const { call } = app({ events: bus })
    const res = await call('GET', '/events/stream')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('text/event-stream')
    const reading = readEvents(res, 2)
    await Bun.sleep(10)
    const a = reload('watch')
    const b = reload('api')
    bus.emit(a)
    bus.emit(b)
    const got = await reading
    expect(got[0]!.event).toBe('ready')
    expect(got.slice(1).map((m) => [m.event, m.id, m.data.event_id])).toEqual([
      ['config_reload.v0', a.event_id, a.event_id],
      ['config_reload.v0', b.event_id, b.event_id],
    ])
  })

  test('?filter= keeps only matching events', async () => {
    const bus = new EventBus()
    const { call } = app({ events: bus })
    const res = await call('GET', `/events/stream?filter=${encodeURIComponent('ev.reason == "api"')}`)
    const reading = readEvents(res, 1)
    await Bun.sleep(10)
    bus.emit(reload('watch'))
    bus.emit(reload('api'))
    const got = await reading
    expect(got[1]!.data.object.reason).toBe('api')
  })

  test('a filter that does not compile is a 400 naming the problem', async () => {
    const { call } = app()
    const res = await call('GET', `/events/stream?filter=${encodeURIComponent('ev.conn.bytes_in >')}`)
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ error_code: 'ERR_WARREN_6004', details: { field: 'filter' } })
  })

  test('a client that stops reading is unsubscribed', async () => {
    let subscribed = 0
    class CountingBus extends EventBus {
      override subscribe(fn: (b: readonly WarrenEvent[]) => void) {
        subscribed++
        const off = super.subscribe(fn)
        let on = true
        return () => {
          if (on) subscribed--
          on = false
          return off()
        }
      }
    }
    const bus = new CountingBus()
    const counting = bus
    const { call } = app({ events: counting })
    const res = await call('GET', '/events/stream')
    const reader = res.body!.getReader()
    await reader.read()
    expect(subscribed).toBe(1)
    await reader.cancel()
    bus.emit(reload('x'))
    await Bun.sleep(20)
    expect(subscribed).toBe(0)
  })
})
