import ngrok from '@ngrok/ngrok'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { selfSigned } from './framework/certs.ts'
import { freePort } from './framework/ports.ts'
import { edgeFlags, startAgent, type AgentProcess } from './framework/agent.ts'
import { eventually, logLines, startEdge, WARREN_BIN, type Edge } from './framework/process.ts'
import { echoRoundTrip, startEchoServer, startTlsAnswerOnce, tlsRoundTrip } from './framework/tcp.ts'
import { rawRequest } from './framework/raw.ts'
import { startUpstream } from './framework/upstreams.ts'

// `warren serve --workers 2`: two worker processes share the ports; an agent's endpoint answers on both.
const upstream = startUpstream('workers-origin')
// Answers after 1.5 s: a request in flight while the edge drains.
let slowArrived = 0
const slow = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  fetch: (req) => (new URL(req.url).pathname === '/warm' ? new Response('warm') : (slowArrived++, Bun.sleep(1500).then(() => new Response('slow done')))),
})
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
  - name: bob
    authtokens: [bob-token]
    domains: ["*.bob.warren.localhost"]
agents:
  reconnect_wait: 5
`
}

/**
 * The first log line of one kind that `match` accepts, waited for: a worker's lines reach the edge's output
 * through the supervisor, so they can trail what a client already saw.
 */
async function logLine(e: Edge, msg: string, match: (l: any) => boolean, timeoutMs = 5000): Promise<any> {
  let found: any
  await eventually(async () => (found = logLines(e, msg).find(match)) !== undefined, timeoutMs, 25)
  if (found === undefined) throw new Error(`no log line "${msg}" matched within ${timeoutMs} ms`)
  return found
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
  slow.stop(true)
  echo.stop(true)
})

/** One HTTPS request over a fresh HTTP/1.1 connection: status and body ('' and 0 when it failed). */
async function get(e: Edge, url: string): Promise<{ status: number; body: string }> {
  const u = new URL(url)
  const proc = Bun.spawn(['curl', '-s', '--max-time', '20', '--http1.1', '-w', '\\n%{http_code}', '--cacert', e.caPath, '--resolve', `${u.hostname}:${u.port}:127.0.0.1`, url], { stdout: 'pipe' })
  const out = await new Response(proc.stdout).text()
  await proc.exited
  const i = out.lastIndexOf('\n')
  return { status: Number(out.slice(i + 1)) || 0, body: out.slice(0, Math.max(i, 0)) }
}

describe('warren serve --workers 2', () => {
  test('both workers serve; an agent bound on one answers through either', async () => {
    const started = logLines(edge, 'warren edge started').map((l) => l.worker)
    expect(started.sort()).toEqual([1, 2])
    const a = startAgent(['http', String(upstream.port), ...edgeFlags(edge, 'alice-token')])
    agents.push(a)
    const [url] = await a.forwarding()
    expect(await eventually(async () => (await Promise.all([1, 2, 3, 4].map(() => get(edge, `${url}/warm`)))).every((r) => r.status === 200), 5000, 50)).toBe(true)
    const statuses = await fetchMany(edge, url!, 60)
    expect(statuses.length).toBe(60)
    expect(statuses.filter((s) => s !== 200)).toEqual([])
    const servedLines = () => logLines(edge, 'request').filter((l) => l.endpoint === `https://${new URL(url!).hostname}` && l.status === 200 && l.path.startsWith('/n/'))
    // Access lines trail the answers (they pass through the supervisor): wait for all 60.
    expect(await eventually(async () => servedLines().length === 60, 5000)).toBe(true)
    const served = servedLines()
    const byWorker = new Map<number, number>()
    for (const l of served) byWorker.set(l.worker, (byWorker.get(l.worker) ?? 0) + 1)
    // SO_REUSEPORT spreads fresh connections by hash: with 60 both workers get some (a 2^-59 chance otherwise).
    expect([...byWorker.keys()].sort()).toEqual([1, 2])
    // The link's cost, roughly (this machine is shared: not asserted): edge time of requests on the
    // holding worker against those that crossed the link.
    const holder = (await logLine(edge, 'agent endpoint bound', (l) => l.url === `https://${new URL(url!).hostname}`)).worker
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]
    // The first request on each worker issues the name's certificate: left out.
    const ms = (local: boolean) => median(served.filter((l) => (l.worker === holder) === local).slice(1).map((l) => l.duration_ms as number))
    console.log(`workers e2e: median edge time ${ms(true)} ms on the agent's worker, ${ms(false)} ms across the link`)
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

  test('websockets to an agent bound on one worker work through either: messages both ways over the local link', async () => {
    const a = startAgent(['http', String(upstream.port), '--url', 'http://ws.warren.localhost', ...edgeFlags(edge, 'alice-token')])
    agents.push(a)
    try {
      await a.forwarding()
      const open = () =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(`ws://127.0.0.1:${edge.httpPort}/socket`, { headers: { host: 'ws.warren.localhost' } } as unknown as string[])
          ws.binaryType = 'arraybuffer'
          ws.onopen = () => resolve(ws)
          ws.onerror = () => reject(new Error('websocket failed to open'))
        })
      const next = (ws: WebSocket) => new Promise<MessageEvent>((resolve) => ws.addEventListener('message', resolve, { once: true }))
      // Every worker knows the endpoint once the registry told it: a few opens succeed in a row.
      expect(await eventually(async () => (await Promise.all([1, 2, 3, 4].map(() => open().then((ws) => (ws.close(), true), () => false)))).every(Boolean), 5000, 50)).toBe(true)
      // Twelve more fresh connections: SO_REUSEPORT spreads them over both workers (all sixteen on one: 1 in 2^15).
      for (let i = 0; i < 12; i++) {
        const ws = await open()
        ws.send(`hello ${i}`)
        expect((await next(ws)).data).toBe(`hello ${i}`)
        const bytes = new Uint8Array(100_000).map((_, j) => (j * 7 + i) & 0xff)
        ws.send(bytes)
        expect(Buffer.compare(Buffer.from((await next(ws)).data as ArrayBuffer), Buffer.from(bytes))).toBe(0)
        ws.close(1000)
      }
      const holder = (await logLine(edge, 'agent endpoint bound', (l) => l.url === 'http://ws.warren.localhost')).worker
      // Upgrades are logged when they end (their lines pass through the supervisor): wait for all sixteen.
      const upgrades = () => logLines(edge, 'request').filter((l) => l.endpoint === 'http://ws.warren.localhost' && l.path === '/socket')
      expect(await eventually(async () => upgrades().length >= 16, 5000)).toBe(true)
      expect(upgrades().some((l) => l.worker !== holder)).toBe(true)
    } finally {
      await a.stop()
    }
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

  test('stop and restart of a session work whichever worker takes the API request', async () => {
    const api = (path: string, method = 'GET') => fetch(`http://127.0.0.1:${edge.apiPort}${path}`, { method, headers: { connection: 'close', authorization: 'Bearer workers-key' } })
    const [session] = ((await (await api('/tunnel-sessions')).json()) as { tunnel_sessions: { id: string }[] }).tunnel_sessions
    const agent = agents[0]!
    // Six commands over fresh connections: both workers answer some (all on one: 1 in 32).
    for (const [i, action] of ['stop', 'restart', 'stop', 'restart', 'stop', 'stop'].entries()) {
      const lost = agent.logs().match(/session lost; reconnecting|restart/g)?.length ?? 0
      // Right after a reconnect a worker may not know the session yet (one registry message later): 404, then 204.
      let status = 0
      expect(await eventually(async () => (status = (await api(`/tunnel-sessions/${session!.id}/${action}`, 'POST')).status) !== 404, 5000, 50)).toBe(true)
      expect({ i, action, status }).toEqual({ i, action, status: 204 })
      // The agent saw it (a new reconnect line) and is back before the next command.
      expect(await eventually(async () => (agent.logs().match(/session lost; reconnecting|restart/g)?.length ?? 0) > lost, 10_000, 50)).toBe(true)
      // Back on some worker, and known to all: the other learns of it one registry message later, so
      // four answers in a row over fresh connections (each may land on either worker).
      const listed = async () => (await Promise.all([1, 2, 3, 4].map(() => api(`/tunnel-sessions/${session!.id}`)))).every((r) => r.status === 200)
      expect(await eventually(listed, 10_000, 100)).toBe(true)
    }
  })

  test('kill -9 of the worker holding an agent: it is restarted, the agent reconnects and its URL answers again within 15 s', async () => {
    const a = startAgent(['http', String(upstream.port), ...edgeFlags(edge, 'alice-token')])
    agents.push(a)
    const [url] = await a.forwarding()
    const host = new URL(url!).hostname
    const holder = (await logLine(edge, 'agent endpoint bound', (l) => l.url === `https://${host}`)).worker as number
    const pid = logLines(edge, 'worker started').filter((l) => l.worker === holder).at(-1).pid as number
    // Every worker learns of a new endpoint one registry message after the bind (docs/cluster.md).
    expect(await eventually(async () => (await Promise.all([1, 2, 3, 4].map(() => get(edge, `${url}/before`)))).every((r) => r.status === 200), 5000, 50)).toBe(true)
    const killedAt = Date.now()
    process.kill(pid, 'SIGKILL')
    await edge.waitForLog(new RegExp(`"msg":"worker exited; restarting","worker":${holder},"pid":${pid}`), 5000)
    expect(await eventually(async () => (await get(edge, `${url}/after`)).status === 200, 15_000, 200)).toBe(true)
    const back = Date.now() - killedAt
    // The same URL, not a new one: the agent re-bound its tunnel id on whichever worker took it.
    expect(a.logs().match(/Forwarding /g)?.length).toBe(1)
    expect(back).toBeLessThan(15_000)
    // The killed worker comes back as a new process (after the restart backoff) and serves again.
    expect(await eventually(async () => logLines(edge, 'worker started').some((l) => l.worker === holder && l.pid !== pid), 10_000, 50)).toBe(true)
    expect(await eventually(async () => logLines(edge, 'warren edge started').filter((l) => l.worker === holder).length === 2, 15_000, 50)).toBe(true)
    console.log(`workers e2e: URL answered again ${back} ms after kill -9 of its worker`)
  })

  test('the official SDK keeps its random URL when its worker is killed: it re-binds its tunnel id on another worker', async () => {
    const session = await new ngrok.SessionBuilder().authtoken('alice-token').serverAddr(`127.0.0.1:${edge.agentPort}`).rootCas(edge.caPath).connect()
    try {
      const listener = await session.httpEndpoint().listenAndForward(`http://127.0.0.1:${upstream.port}`)
      const url = listener.url()!
      expect(await eventually(async () => (await Promise.all([1, 2, 3, 4].map(() => get(edge, `${url}/sdk-before`)))).every((r) => r.status === 200), 5000, 50)).toBe(true)
      const host = new URL(url).hostname
      const holder = (await logLine(edge, 'agent endpoint bound', (l) => l.url === `https://${host}`)).worker as number
      const pid = logLines(edge, 'worker started').filter((l) => l.worker === holder).at(-1).pid as number
      const startedBefore = logLines(edge, 'warren edge started').length
      process.kill(pid, 'SIGKILL')
      expect(await eventually(async () => (await get(edge, `${url}/sdk-after`)).status === 200, 15_000, 200)).toBe(true)
      expect(listener.url()).toBe(url)
      // Bound again (by the SDK's tunnel id, the URL not sent) rather than a new random name.
      expect(await eventually(async () => logLines(edge, 'agent endpoint bound').filter((l) => l.url === `https://${host}`).length === 2, 5000)).toBe(true)
      await listener.close()
      // The killed worker is back (counted from before the kill: the test above may or may not have killed one).
      expect(await eventually(async () => logLines(edge, 'warren edge started').length === startedBefore + 1, 15_000, 50)).toBe(true)
    } finally {
      await session.close().catch(() => {})
    }
  })

  test('HTTP/2 (ALPN h2) and a tls:// passthrough endpoint, agents bound on one worker, answer through either', async () => {
    const cert = selfSigned(['pass.warren.localhost'])
    // The agent's upstream terminates TLS itself (passthrough): echoes the first chunk and closes.
    const backend = await startTlsAnswerOnce(cert)
    const http = startAgent(['http', String(upstream.port), ...edgeFlags(edge, 'alice-token')])
    const pass = startAgent(['tls', String(backend.port), '--url', 'tls://pass.warren.localhost', ...edgeFlags(edge, 'alice-token')])
    agents.push(http, pass)
    try {
      const [[url]] = await Promise.all([http.forwarding(), pass.forwarding()])
      const u = new URL(url!)
      // 20 curl processes, so 20 h2 connections (one curl would multiplex every URL on one): SO_REUSEPORT hashes them over both workers.
      const h2 = () =>
        Promise.all(
          Array.from({ length: 20 }, async (_, i) => {
            const proc = Bun.spawn(['curl', '-s', '--max-time', '20', '--http2', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', '--cacert', edge.caPath, '--resolve', `${u.hostname}:${u.port}:127.0.0.1`, `${url}/h2/${i}`], { stdout: 'pipe' })
            const out = await new Response(proc.stdout).text()
            await proc.exited
            return out.trim()
          }),
        )
      expect(await eventually(async () => (await h2()).every((l) => l === '2 200'), 10_000, 100)).toBe(true)
      const h2Lines = () => logLines(edge, 'request').filter((l) => l.endpoint === `https://${u.hostname}` && l.path.startsWith('/h2/'))
      expect(await eventually(async () => new Set(h2Lines().map((l) => l.worker)).size === 2, 5000)).toBe(true)
      const roundTrip = () => tlsRoundTrip({ host: '127.0.0.1', port: edge.httpsPort, servername: 'pass.warren.localhost', ca: cert.cert, message: 'passed through\n' })
      expect(await eventually(async () => (await roundTrip().catch(() => ({ text: '' }))).text === 'passed through\n', 5000, 100)).toBe(true)
      // 20 fresh connections: both workers get some, and every one reaches the agent's TLS server.
      for (let i = 0; i < 20; i++) expect(await roundTrip()).toEqual({ text: 'passed through\n', subject: 'pass.warren.localhost' })
    } finally {
      await Promise.all([http.stop(), pass.stop()])
      backend.close()
    }
  })

  test('forward-internal from a file endpoint on every worker to an internal agent endpoint bound on one; never from another account', async () => {
    const a = startAgent(['http', String(upstream.port), '--url', 'https://svc.internal', '--binding', 'internal', ...edgeFlags(edge, 'alice-token')])
    agents.push(a)
    const front = (account: string, name: string) =>
      `account: ${account}\nendpoints:\n  - url: https://${name}.warren.localhost\n    traffic_policy:\n      on_http_request:\n        - actions: [{type: forward-internal, config: {url: "https://svc.internal"}}]\n`
    edge.writePolicy('front.yml', front('alice', 'front'))
    edge.writePolicy('bobfront.yml', front('bob', 'front.bob'))
    try {
      await a.forwarding()
      const url = `https://front.warren.localhost:${edge.httpsPort}`
      expect(await eventually(async () => (await Promise.all([1, 2, 3, 4].map(() => get(edge, `${url}/warm`)))).every((r) => r.status === 200), 10_000, 100)).toBe(true)
      // 40 fresh connections: both workers take some, and every request reaches the agent's upstream.
      const before = upstream.seen.filter((r) => r.path.startsWith('/fi/')).length
      const statuses = await fetchMany(edge, `${url}/fi`, 40)
      expect(statuses.filter((st) => st !== 200)).toEqual([])
      expect(upstream.seen.filter((r) => r.path.startsWith('/fi/')).length - before).toBe(40)
      const lines = () => logLines(edge, 'request').filter((l) => l.endpoint === 'https://front.warren.localhost' && l.path.startsWith('/fi/'))
      expect(await eventually(async () => new Set(lines().map((l) => l.worker)).size === 2, 5000)).toBe(true)
      // Bob's front endpoint on either worker: 404 with the code, never alice's internal endpoint.
      expect(await eventually(async () => (await get(edge, `https://front.bob.warren.localhost:${edge.httpsPort}/x`)).status === 404, 5000, 100)).toBe(true)
      expect((await fetchMany(edge, `https://front.bob.warren.localhost:${edge.httpsPort}/y`, 10)).every((st) => st === 404)).toBe(true)
    } finally {
      edge.removePolicy('front.yml')
      edge.removePolicy('bobfront.yml')
      await a.stop()
    }
  })

  test('agents binding one URL at the same instant on both workers: one keeps it everywhere, the others are refused or stopped', async () => {
    const second = startUpstream('workers-second')
    const connect = () => new ngrok.SessionBuilder().authtoken('alice-token').serverAddr(`127.0.0.1:${edge.agentPort}`).rootCas(edge.caPath).connect()
    let settled = 0
    try {
      // Four SDK sessions (the kernel spreads their connections over both workers), then four Binds of
      // one URL sent in the same tick: each worker checks its own view of the registry, which lags the
      // other worker by one message, so two may accept; the supervisor then keeps the first and stops
      // the other (ERR_WARREN_7023 in the edge's log, ERR_NGROK_334 to the agent).
      for (let round = 0; round < 3; round++) {
        // A name per round: the previous round's endpoint may still be going away.
        const host = `dup${round}.warren.localhost`
        const url = `https://${host}:${edge.httpsPort}`
        const sessions = await Promise.all([1, 2, 3, 4].map(connect))
        const listeners: ngrok.Listener[] = []
        try {
          const before = logLines(edge, 'another worker holds this URL; the later agent endpoint is stopped').length
          const binds = await Promise.all(
            sessions.map((s, i) =>
              s
                .httpEndpoint()
                .domain(host)
                .listenAndForward(`http://127.0.0.1:${(i % 2 ? second : upstream).port}`)
                .then(
                  (listener) => (listeners.push(listener), 'bound'),
                  (err: Error) => String(err.message ?? err),
                ),
            ),
          )
          expect(binds.filter((b) => b === 'bound').length).toBeGreaterThanOrEqual(1)
          for (const refusal of binds.filter((b) => b !== 'bound')) expect(refusal).toContain('ERR_NGROK_334')
          // Settled: 20 fresh connections over both workers all reach one upstream.
          expect(
            await eventually(async () => {
              const answers = await Promise.all(Array.from({ length: 20 }, () => get(edge, `${url}/dup`)))
              return answers.every((r) => r.status === 200) && new Set(answers.map((r) => JSON.parse(r.body).upstream)).size === 1
            }, 10_000, 100),
          ).toBe(true)
          // Every accepted Bind but one was stopped by the supervisor (its log line may trail).
          const stopped = () => logLines(edge, 'another worker holds this URL; the later agent endpoint is stopped').length - before
          const accepted = binds.filter((b) => b === 'bound').length
          expect(await eventually(async () => stopped() === accepted - 1, 5000, 25)).toBe(true)
          settled += stopped()
        } finally {
          // Listeners first (the SDK keeps them process-wide; left open, later SDK sessions of this process fail to close theirs).
          await Promise.all(listeners.map((l) => l.close().catch(() => {})))
          await Promise.all(sessions.map((s) => s.close().catch(() => {})))
        }
      }
      console.log(`workers e2e: the supervisor stopped ${settled} later Binds of one URL in 3 rounds (the others were refused by their worker)`)
    } finally {
      second.stop(true)
    }
  })

  test('a Bind is answered once the other worker serves the endpoint: a stopped worker holds it (up to 1 s), then it answers at once', async () => {
    const connectedBefore = logLines(edge, 'agent connected').length
    const session = await new ngrok.SessionBuilder().authtoken('alice-token').serverAddr(`127.0.0.1:${edge.agentPort}`).rootCas(edge.caPath).connect()
    expect(await eventually(async () => logLines(edge, 'agent connected').length > connectedBefore, 5000, 25)).toBe(true)
    // The worker that does not hold the session: its pid from the supervisor's latest start of it.
    const holder = logLines(edge, 'agent connected').at(-1).worker as number
    const pid = logLines(edge, 'worker started').filter((l) => l.worker === 3 - holder).at(-1).pid as number
    try {
      process.kill(pid, 'SIGSTOP')
      const started = Date.now()
      setTimeout(() => process.kill(pid, 'SIGCONT'), 400)
      const listener = await session.httpEndpoint().scheme('HTTP').domain('held.warren.localhost').listenAndForward(`http://127.0.0.1:${upstream.port}`)
      const waited = Date.now() - started
      try {
        // Answered after the other worker came back and applied the endpoint, not before.
        expect(waited).toBeGreaterThanOrEqual(380)
        expect(waited).toBeLessThan(1500)
        const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => rawRequest(edge.httpPort, `GET /held/${i} HTTP/1.1\r\nHost: held.warren.localhost\r\nConnection: close\r\n\r\n`, 5000)))
        expect(answers.map((a) => a.split('\r\n')[0])).toEqual(Array(20).fill('HTTP/1.1 200 OK'))
      } finally {
        await listener.close()
      }
      // A worker that stays stopped holds a Bind 1 s at most.
      process.kill(pid, 'SIGSTOP')
      const again = Date.now()
      const late = await session.httpEndpoint().scheme('HTTP').domain('held2.warren.localhost').listenAndForward(`http://127.0.0.1:${upstream.port}`)
      const held = Date.now() - again
      process.kill(pid, 'SIGCONT')
      await late.close()
      expect(held).toBeGreaterThanOrEqual(900)
      expect(held).toBeLessThan(3000)
    } finally {
      process.kill(pid, 'SIGCONT')
      await session.close().catch(() => {})
    }
  })

  test('SIGTERM: every worker drains (a request in flight finishes), then all exit 0', async () => {
    const a = startAgent(['http', String(slow.port), ...edgeFlags(edge, 'alice-token')])
    agents.push(a)
    const [url] = await a.forwarding()
    // Each worker has issued the name's certificate once this answered on both (fresh connections).
    for (let i = 0; i < 6; i++) expect((await get(edge, `${url}/warm`)).status).toBe(200)
    // Six fresh connections: some land on the worker without the agent and cross the link (all on one: 1 in 32).
    const inFlight = Array.from({ length: 6 }, (_, i) => get(edge, `${url}/slow/${i}`))
    // In flight for real: the upstream holds all six.
    expect(await eventually(async () => slowArrived === 6, 5000)).toBe(true)
    edge.proc.kill('SIGTERM')
    for (const r of await Promise.all(inFlight)) expect(r).toEqual({ status: 200, body: 'slow done' })
    expect(await edge.proc.exited).toBe(0)
    const stopped = logLines(edge, 'warren edge stopped')
    // Both workers stopped (the one restarted above included), each after its drain.
    expect(new Set(stopped.map((l) => l.worker))).toEqual(new Set([1, 2]))
    expect(stopped.every((l) => l.drained === true)).toBe(true)
    expect(logLines(edge, 'workers stopped').length).toBe(1)
  })
})

describe('warren serve --workers 1', () => {
  test('is one process as before: no supervisor, no worker tag; the flag wins over serve.workers', async () => {
    const single = await startEdge({ config: 'serve: {workers: 2}\n', args: ['--workers', '1'] })
    try {
      const started = logLines(single, 'warren edge started')
      expect(started.length).toBe(1)
      expect(started[0].worker).toBeUndefined()
      expect(logLines(single, 'worker started')).toEqual([])
      const res = await fetch(`${single.base}/`, { headers: { host: 'nothing.warren.localhost' } })
      expect(res.status).toBe(404)
      expect(res.headers.get('warren-error-code')).toBe('ERR_WARREN_3200')
    } finally {
      await single.stop()
    }
    expect(single.proc.exitCode).toBe(0)
  })

  test('--workers rejects what is not a whole number from 1 or auto', async () => {
    const proc = Bun.spawnSync([WARREN_BIN, 'serve', '--workers', '0'])
    expect(proc.exitCode).toBe(1)
    expect(proc.stderr.toString()).toContain('ERR_WARREN_7001')
  })
})
