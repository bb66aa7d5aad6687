import ngrok from '@ngrok/ngrok'
import { afterAll, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import * as http2 from 'node:http2'
import { edgeFlags, startAgent, type AgentProcess } from '../e2e/framework/agent.ts'
import { startEdge, type Edge } from '../e2e/framework/process.ts'

// SIGTERM on an edge with agents connected (the warren agent and the official ngrok SDK) and load
// running: it stops accepting, lets every request already started finish, then tells the agents to
// go and exits 0, well before its drain deadline. A request that has reached the upstream must never
// be lost: that is what "0 reset requests among those that had started" means here.

/** The default `shutdown.drain` (the edges below set none). */
const DRAIN_MS = 10_000
const WORKERS = 12
/** Bounds of the load: requests in all, and how long it may run. */
const MAX_REQUESTS = 3000
const MAX_LOAD_MS = 20_000
const ACCOUNTS = `accounts:
  - name: alice
    authtokens: [alice-token]
    domains: ["*.warren.localhost"]
`

/** An upstream whose answers take `ms`; it records which request ids arrived and which it answered. */
function slowUpstream() {
  const arrived = new Set<string>()
  const answered = new Set<string>()
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    idleTimeout: 60,
    async fetch(req) {
      const url = new URL(req.url)
      const id = url.searchParams.get('id') ?? ''
      arrived.add(id)
      await Bun.sleep(Number(url.searchParams.get('ms') ?? 0))
      answered.add(id)
      return new Response(`done ${id}`)
    },
  })
  return { server, arrived, answered }
}

const upstream = slowUpstream()
const cleanup: (() => Promise<unknown> | void)[] = []
afterAll(async () => {
  for (const c of cleanup.reverse()) await c()
  upstream.server.stop(true)
})

interface Outcome {
  id: string
  status: number
  body: string
  error: string | undefined
}

/**
 * Load on two endpoints until `until` settles: each worker sends one request at a time, with fresh
 * request ids and answers that take 200–1200 ms, and records every outcome.
 */
async function runLoad(edge: Edge, until: Promise<unknown>): Promise<Outcome[]> {
  const ca = readFileSync(edge.caPath, 'utf8')
  const outcomes: Outcome[] = []
  let stop = false
  void until.then(() => (stop = true))
  const started = Date.now()
  let next = 0
  const worker = async (w: number) => {
    while (!stop && next < MAX_REQUESTS && Date.now() - started < MAX_LOAD_MS) {
      const id = `r${next++}`
      const ms = 200 + ((next * 37) % 1000)
      const viaSdk = w % 2 === 1
      const request = viaSdk
        ? fetch(`https://127.0.0.1:${edge.httpsPort}/slow?id=${id}&ms=${ms}`, { headers: { host: 'drain-sdk.warren.localhost' }, tls: { ca, serverName: 'drain-sdk.warren.localhost' } } as RequestInit)
        : fetch(`http://127.0.0.1:${edge.httpPort}/slow?id=${id}&ms=${ms}`, { headers: { host: 'drain-agent.warren.localhost' } })
      const outcome = await request.then(
        async (r) => ({ id, status: r.status, body: await r.text(), error: undefined }),
        (e: Error) => ({ id, status: 0, body: '', error: e.message }),
      )
      outcomes.push(outcome)
      // The edge stopped accepting: try again a little later, until it has exited.
      if (outcome.error) await Bun.sleep(50)
    }
  }
  await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)))
  return outcomes
}

describe('edge SIGTERM under load', () => {
  test('drains: every started request completes, the agents are told, exit 0 before the deadline', async () => {
    const edge = await startEdge({ config: ACCOUNTS })
    cleanup.push(() => edge.stop())
    const agent: AgentProcess = startAgent(['http', String(upstream.server.port), '--url', 'http://drain-agent.warren.localhost', ...edgeFlags(edge, 'alice-token')])
    cleanup.push(() => agent.stop())
    await agent.forwarding()
    const session = await new ngrok.SessionBuilder().authtoken('alice-token').serverAddr(`127.0.0.1:${edge.agentPort}`).rootCas(edge.caPath).connect()
    cleanup.push(() => session.close().catch(() => {}))
    await session.httpEndpoint().domain('drain-sdk.warren.localhost').listenAndForward(`http://127.0.0.1:${upstream.server.port}`)

    // An HTTP/2 client too: its request in flight must finish; the session is told GOAWAY.
    const h2 = http2.connect(`https://127.0.0.1:${edge.httpsPort}`, { servername: 'drain-sdk.warren.localhost', ca: readFileSync(edge.caPath) })
    cleanup.push(() => void h2.destroy())
    let h2GoAway = false
    h2.on('goaway', () => (h2GoAway = true))
    h2.on('error', () => {})

    const exited = edge.proc.exited
    const load = runLoad(edge, exited)
    await Bun.sleep(1200)
    const h2Answer = new Promise<string>((resolve) => {
      const r = h2.request({ ':path': '/slow?id=h2&ms=1500', ':authority': 'drain-sdk.warren.localhost' })
      let status = 0
      let body = ''
      r.on('response', (h) => (status = Number(h[':status'])))
      r.on('data', (d: Buffer) => (body += d))
      r.on('end', () => resolve(`${status} ${body}`))
      r.on('error', (e: Error) => resolve(`error ${e.message}`))
    })
    await Bun.sleep(300)
    const inFlightAtSignal = [...upstream.arrived].filter((id) => id.startsWith('r') && !upstream.answered.has(id))
    const signalled = Date.now()
    edge.proc.kill('SIGTERM')
    const code = await Promise.race([exited, Bun.sleep(DRAIN_MS + 5000).then(() => 'still running')])
    const tookMs = Date.now() - signalled
    const outcomes = await load

    expect(code).toBe(0)
    expect(tookMs).toBeLessThan(DRAIN_MS)
    const byId = new Map(outcomes.map((o) => [o.id, o]))
    // Started = reached the upstream. Each of them got its whole answer.
    const started = [...upstream.arrived].filter((id) => byId.has(id))
    const lost = started.filter((id) => byId.get(id)!.status !== 200 || byId.get(id)!.body !== `done ${id}`)
    const answeredByEdge = outcomes.filter((o) => o.status !== 0)
    const refused = outcomes.filter((o) => o.status === 0)
    console.log(`drain: ${outcomes.length} requests, ${started.length} started, ${inFlightAtSignal.length} in flight at SIGTERM, ${lost.length} lost, ${refused.length} not started (connection refused/closed), exit after ${tookMs} ms`)
    expect(inFlightAtSignal.length).toBeGreaterThanOrEqual(4)
    expect(lost).toEqual([])
    for (const id of inFlightAtSignal) expect(byId.get(id)?.status).toBe(200)
    // No edge-made error either (a 404 for an agent endpoint, a 502 for a closed session).
    expect(answeredByEdge.filter((o) => o.status !== 200)).toEqual([])
    // A request that failed never reached the upstream.
    for (const o of refused) expect(upstream.arrived.has(o.id)).toBe(false)
    expect(await h2Answer).toBe('200 done h2')
    expect(h2GoAway).toBe(true)
    expect(edge.logs()).toContain('"msg":"warren edge stopped","drained":true')
    // Told to go (GOAWAY), the agent reconnects (to a closed port, until the edge is back).
    await agent.waitForLog(/session lost; reconnecting/, 3000)
  }, 60_000)

  test('a request longer than shutdown.drain is cut at the deadline (ERR_WARREN_3020 logged), and the edge still exits 0', async () => {
    const edge = await startEdge({ config: `${ACCOUNTS}shutdown: {drain: 1s}\n` })
    cleanup.push(() => edge.stop())
    const agent = startAgent(['http', String(upstream.server.port), '--url', 'http://drain-long.warren.localhost', ...edgeFlags(edge, 'alice-token')])
    cleanup.push(() => agent.stop())
    await agent.forwarding()
    const long = fetch(`http://127.0.0.1:${edge.httpPort}/slow?id=long&ms=8000`, { headers: { host: 'drain-long.warren.localhost' } }).then(
      (r) => r.text().then(() => 'answered'),
      () => 'cut',
    )
    const deadline = Date.now() + 3000
    while (!upstream.arrived.has('long') && Date.now() < deadline) await Bun.sleep(20)
    expect(upstream.arrived.has('long')).toBe(true)
    const signalled = Date.now()
    edge.proc.kill('SIGTERM')
    const code = await Promise.race([edge.proc.exited, Bun.sleep(6000).then(() => 'still running')])
    const tookMs = Date.now() - signalled
    expect(code).toBe(0)
    expect(tookMs).toBeGreaterThanOrEqual(900)
    // The drain (1 s), then at most the events flush and the exit guard.
    expect(tookMs).toBeLessThan(3000)
    expect(await long).toBe('cut')
    expect(edge.logs()).toMatch(/"msg":"shutdown drain deadline passed: cutting what is still in flight".*"code":"ERR_WARREN_3020"/)
  }, 30_000)
})
