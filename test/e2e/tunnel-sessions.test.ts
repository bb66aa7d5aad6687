import ngrok from '@ngrok/ngrok'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { curl } from './framework/curl.ts'
import { eventually, fileEvents, startEdge, WARREN_BIN, type Edge } from './framework/process.ts'
import { startUpstream } from './framework/upstreams.ts'

// /tunnel-sessions and `warren api sessions` against the compiled edge with the official SDK as the
// agent: list, agent endpoints read-only with their session, stop (the agent reconnects), events.
const KEY = 'e2e-sessions-key'
const HOST = 'sess.alice.warren.localhost'
const upstream = startUpstream('sessions-origin')
let edge: Edge
let session: ngrok.Session

function api(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${edge.apiPort}${path}`, { ...init, headers: { authorization: `Bearer ${KEY}`, ...(init.body ? { 'content-type': 'application/json' } : {}) } })
}

function warrenApi(args: string[]): { code: number; json: any; err: string } {
  const proc = Bun.spawnSync([WARREN_BIN, 'api', ...args, '--api-url', `http://127.0.0.1:${edge.apiPort}`], { env: { PATH: process.env.PATH ?? '', WARREN_API_KEY: KEY } })
  const out = proc.stdout.toString()
  let json: unknown
  try {
    json = JSON.parse(out || proc.stderr.toString())
  } catch {}
  return { code: proc.exitCode ?? -1, json, err: proc.stderr.toString() }
}


function get(path: string) {
  return curl(['--cacert', edge.caPath, '--resolve', `${HOST}:${edge.httpsPort}:127.0.0.1`, `https://${HOST}:${edge.httpsPort}${path}`])
}

beforeAll(async () => {
  edge = await startEdge({
    config: `api_keys: [${KEY}]
accounts:
  - name: alice
    authtokens: [alice-token]
    domains: ["*.alice.warren.localhost"]
agents:
  reconnect_wait: 5
events:
  sinks:
    - type: file
      path: events.jsonl
      types: [agent_session_start.v0, agent_session_stop.v0]
`,
  })
  session = await new ngrok.SessionBuilder().authtoken('alice-token').serverAddr(`127.0.0.1:${edge.agentPort}`).rootCas(edge.caPath).connect()
  await session.httpEndpoint().domain(HOST).listenAndForward(`http://127.0.0.1:${upstream.port}`)
})
afterAll(async () => {
  for (const l of await ngrok.listeners()) await l.close().catch(() => {})
  await session?.close().catch(() => {})
  await edge?.stop()
  upstream.stop(true)
})

describe('/tunnel-sessions with the official SDK (compiled binary)', () => {
  let id: string

  test('warren api sessions list shows the agent, its account and its endpoints', async () => {
    const r = warrenApi(['sessions', 'list'])
    expect(r.code).toBe(0)
    expect(r.json.tunnel_sessions.length).toBe(1)
    const s = r.json.tunnel_sessions[0]
    id = s.id
    expect(s).toMatchObject({ account: 'alice', ip: '127.0.0.1', os: expect.any(String), agent_version: expect.stringMatching(/\d/) })
    expect(s.client_info.ClientType).toBe('ngrok-javascript')
    expect(JSON.stringify(s.client_info)).not.toContain('alice-token')
    expect(s.endpoints.map((e: { url: string }) => e.url)).toEqual([`https://${HOST}:${edge.httpsPort}`])
    expect(warrenApi(['sessions', 'get', id]).json.id).toBe(id)
    const started = fileEvents(edge).find((e) => e.event_type === 'agent_session_start.v0')
    expect(started.object).toMatchObject({ id, account: 'alice' })
  })

  test('agent endpoints are listed read-only with their tunnel session and cannot be changed', async () => {
    const list: any = await (await api('/endpoints?type=agent')).json()
    expect(list.endpoints.length).toBe(1)
    const ep = list.endpoints[0]
    expect(ep).toMatchObject({ type: 'agent', url: `https://${HOST}:${edge.httpsPort}`, read_only: true, account: 'alice', tunnel_session: { id } })
    const patch = await api(`/endpoints/${ep.id}`, { method: 'PATCH', body: JSON.stringify({ description: 'x' }) })
    expect(patch.status).toBe(409)
    expect(await patch.json()).toMatchObject({ error_code: 'ERR_WARREN_6006' })
    expect((await api(`/endpoints/${ep.id}`, { method: 'DELETE' })).status).toBe(409)
  })

  test('warren api sessions stop ends the session; the SDK reconnects and the URL keeps working', async () => {
    expect((await get('/echo')).status).toBe(200)
    const r = warrenApi(['sessions', 'stop', id])
    expect(r.code).toBe(0)
    expect(r.json).toEqual({ id, stopped: true })
    await edge.waitForLog(new RegExp(`"msg":"agent endpoint resumed".*${HOST.replace(/\./g, '\\.')}`), 15_000)
    expect(await eventually(async () => (await get('/echo')).status === 200, 10_000)).toBe(true)
    // The agent resumed with its client id, so the session id is the same.
    expect(await eventually(async () => warrenApi(['sessions', 'list']).json.tunnel_sessions.some((s: { id: string }) => s.id === id), 5000)).toBe(true)
    const stopped = fileEvents(edge).find((e) => e.event_type === 'agent_session_stop.v0')
    expect(stopped.object).toMatchObject({ id, account: 'alice', reason: 'dropped' })
    expect(fileEvents(edge).filter((e) => e.event_type === 'agent_session_start.v0').length).toBe(2)
  }, 30_000)

  test('restart reaches the agent: it restarts (204) or says why not (502 ERR_WARREN_6010); unknown ids are 404', async () => {
    const res = await api(`/tunnel-sessions/${id}/restart`, { method: 'POST' })
    if (res.status !== 204) {
      expect(res.status).toBe(502)
      expect(await res.json()).toMatchObject({ error_code: 'ERR_WARREN_6010' })
    }
    const missing = warrenApi(['sessions', 'stop', 'no-such-session'])
    expect(missing.code).toBe(1)
    expect(missing.json).toMatchObject({ error_code: 'ERR_WARREN_6003', status_code: 404 })
  }, 20_000)
})
