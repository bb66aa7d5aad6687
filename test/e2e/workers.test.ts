import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { freePort } from './framework/ports.ts'
import { edgeFlags, startAgent, type AgentProcess } from './framework/agent.ts'
import { eventually, startEdge, type Edge } from './framework/process.ts'
import { echoRoundTrip, startEchoServer } from './framework/tcp.ts'
import { startUpstream } from './framework/upstreams.ts'

// `warren serve --workers 2`: two worker processes share the ports; an agent's endpoint answers on both.
const upstream = startUpstream('workers-origin')
const echo = startEchoServer()
let edge: Edge
let tcpPort: number
const agents: AgentProcess[] = []

function config(ports: number[]): string {
  return `api_keys: [workers-key]
accounts:
  - name: alice
    authtokens: [alice-token]
    domains: ["*.warren.localhost"]
    tcp_ports: "${ports.join(',')}"
agents:
  reconnect_wait: 5
`
}

/** The log lines of one kind, parsed (JSON logs; workers tag theirs with `worker`). */
function logLines(e: Edge, msg: string): any[] {
  return e.logs().split('\n').flatMap((l) => {
    try {
      const o = JSON.parse(l)
      return o.msg === msg ? [o] : []
    } catch {
      return []
    }
  })
}

/**
 * `count` HTTPS requests to `url`, each on a fresh connection (curl, `Connection: close`): the kernel
 * spreads new connections over the workers. Returns the status codes.
 */
async function fetchMany(e: Edge, url: string, count: number): Promise<number[]> {
  const u = new URL(url)
  const urls = Array.from({ length: count }, (_, i) => `${url}/n/${i}`)
  const proc = Bun.spawn(['curl', '-s', '--max-time', '60', '-w', '%{http_code}\\n', '--cacert', e.caPath, '--resolve', `${u.hostname}:${u.port}:127.0.0.1`, '--http1.1', '-H', 'connection: close', ...urls.flatMap((u) => ['-o', '/dev/null', u])], { stdout: 'pipe' })
  const out = await new Response(proc.stdout).text()
  await proc.exited
  return out.trim().split('\n').map(Number)
}

beforeAll(async () => {
  tcpPort = await freePort()
  edge = await startEdge({ config: config([tcpPort]), args: ['--workers', '2'] })
  await edge.waitForLog(/"msg":"workers started"/, 20_000)
})
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()))
  await edge?.stop()
  upstream.stop(true)
  echo.stop(true)
})

describe('warren serve --workers 2', () => {
  test('both workers serve; an agent bound on one answers through either', async () => {
    const started = logLines(edge, 'warren edge started').map((l) => l.worker)
    expect(started.sort()).toEqual([1, 2])
    const a = startAgent(['http', String(upstream.port), ...edgeFlags(edge, 'alice-token')])
    agents.push(a)
    const [url] = await a.forwarding()
    const statuses = await fetchMany(edge, url!, 60)
    expect(statuses.length).toBe(60)
    expect(statuses.filter((s) => s !== 200)).toEqual([])
    const served = logLines(edge, 'request').filter((l) => l.endpoint === `https://${new URL(url!).hostname}` && l.status === 200 && l.path.startsWith('/n/'))
    const byWorker = new Map<number, number>()
    for (const l of served) byWorker.set(l.worker, (byWorker.get(l.worker) ?? 0) + 1)
    // SO_REUSEPORT spreads fresh connections by hash: with 60 both workers get some (a 2^-59 chance otherwise).
    expect([...byWorker.keys()].sort()).toEqual([1, 2])
    expect(served.length).toBe(60)
    expect(upstream.seen.filter((r) => r.path.startsWith('/n/')).length).toBe(60)
  })

  test('a tcp endpoint bound on one worker relays through either, bytes intact', async () => {
    const a = startAgent(['tcp', String(echo.port), '--url', `tcp://tcp.warren.localhost:${tcpPort}`, ...edgeFlags(edge, 'alice-token')])
    agents.push(a)
    await a.forwarding()
    // Both workers listen on the tcp port once the registry told them.
    expect(await eventually(async () => (await echoRoundTrip(tcpPort, 5)).receivedBytes === 5, 5000)).toBe(true)
    for (let i = 0; i < 10; i++) {
      const r = await echoRoundTrip(tcpPort, 256 * 1024)
      expect(r.receivedBytes).toBe(256 * 1024)
      expect(r.received).toBe(r.sent)
    }
    await a.stop()
  })

  test('/api/tunnel-sessions lists the sessions of every worker, whichever answers', async () => {
    const list = async () => {
      const res = await fetch(`http://127.0.0.1:${edge.apiPort}/tunnel-sessions`, { headers: { connection: 'close', authorization: 'Bearer workers-key' } })
      return ((await res.json()) as { tunnel_sessions: { id: string }[] }).tunnel_sessions
    }
    // The tcp agent of the test before has gone: workers republish their sessions every 2 s.
    expect(await eventually(async () => (await list()).length === 1 && (await list()).length === 1, 5000, 200)).toBe(true)
    const ids = new Set<string>()
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`http://127.0.0.1:${edge.apiPort}/tunnel-sessions`, { headers: { connection: 'close', authorization: 'Bearer workers-key' } })
      expect(res.status).toBe(200)
      const body = (await res.json()) as { tunnel_sessions: { id: string }[] }
      expect(body.tunnel_sessions.length).toBe(1)
      ids.add(body.tunnel_sessions[0]!.id)
    }
    expect(ids.size).toBe(1)
  })
})
