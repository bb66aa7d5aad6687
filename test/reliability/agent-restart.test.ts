import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { edgeFlags, startAgent, type AgentProcess } from '../e2e/framework/agent.ts'
import { hostFetch, startEdge, type Edge } from '../e2e/framework/process.ts'
import { startUpstream } from '../e2e/framework/upstreams.ts'

// An agent killed (SIGKILL) or frozen (SIGSTOP) and started again with the same URL: the new session of
// the same account takes the reservation over at once, and requests that arrived meanwhile are parked
// and then answered by it. A live holder, or another account, keeps the URL.

/** How long a request may wait for an agent (agents.reconnect_wait): the bound on parking. */
const WAIT_S = 10
const upstream = startUpstream('restart-origin')
const files = mkdtempSync(join(tmpdir(), 'warren-restart-'))
let edge: Edge
const agents: AgentProcess[] = []

function agent(token: string, url: string, extra: string[] = []): AgentProcess {
  const a = startAgent(['http', String(upstream.port), '--url', url, ...extra, ...edgeFlags(edge, token)])
  agents.push(a)
  return a
}

/** Kills the agent and waits until the edge has seen its connection close. */
async function kill(a: AgentProcess, count: number): Promise<void> {
  a.proc.kill('SIGKILL')
  await a.proc.exited
  await waitForCount(/"msg":"agent disconnected"/, count)
}

async function waitForCount(pattern: RegExp, count: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (edge.logs().split('\n').filter((l) => pattern.test(l)).length < count) {
    if (Date.now() > deadline) throw new Error(`fewer than ${count} log lines matching ${pattern}; logs:\n${edge.logs()}`)
    await Bun.sleep(20)
  }
}

const get = (host: string, id: string) =>
  hostFetch(edge, host, `/echo?id=${id}`).then(
    async (r) => ({ status: r.status, body: await r.text(), at: Date.now() }),
    (e: Error) => ({ status: 0, body: e.message, at: Date.now() }),
  )

beforeAll(async () => {
  // Both accounts own every name under the base domain, so only the account rule keeps bob out.
  edge = await startEdge({
    config: `accounts:
  - name: alice
    authtokens: [alice-token]
    domains: ["*.warren.localhost"]
  - name: bob
    authtokens: [bob-token]
    domains: ["*.warren.localhost"]
agents:
  reconnect_wait: ${WAIT_S}
`,
  })
})
afterAll(async () => {
  for (const a of agents) a.proc.kill('SIGCONT')
  await Promise.all(agents.map((a) => a.stop()))
  await edge?.stop()
  upstream.stop(true)
  rmSync(files, { recursive: true, force: true })
})

describe('agent restart with the same URL', () => {
  test('after SIGKILL the new agent takes the URL over at once; requests sent meanwhile are parked, then answered', async () => {
    const host = 'restart.warren.localhost'
    const first = agent('alice-token', `http://${host}`)
    await first.forwarding()
    expect((await get(host, 'before')).status).toBe(200)

    await kill(first, 1)
    const sent = Date.now()
    const parked = ['p1', 'p2', 'p3', 'p4', 'p5'].map((id) => get(host, id))
    await Bun.sleep(300)
    const second = agent('alice-token', `http://${host}`)
    await second.forwarding()
    const bound = Date.now()
    const results = await Promise.all(parked)
    for (const [i, r] of results.entries()) {
      expect(r.status).toBe(200)
      expect(JSON.parse(r.body).path).toBe(`/echo?id=p${i + 1}`)
      // Parked, not failed: answered only once the new agent was there, within reconnect_wait.
      expect(r.at).toBeGreaterThanOrEqual(bound - 50)
      expect(r.at - sent).toBeLessThan(WAIT_S * 1000)
    }
    expect(Math.max(...results.map((r) => r.at)) - bound).toBeLessThan(2000)
    expect((await get(host, 'after')).status).toBe(200)
    expect(edge.logs()).toContain('"msg":"agent endpoint taken over"')
    // The second agent keeps running: nothing refused it.
    expect(second.proc.exitCode).toBeNull()
  }, 30_000)

  test('a live holder keeps its URL (ERR_NGROK_334), and another account never takes a disconnected one over', async () => {
    const host = 'held.warren.localhost'
    const holder = agent('alice-token', `http://${host}`)
    await holder.forwarding()
    const twin = agent('alice-token', `http://${host}`)
    await twin.waitForLog(/ERR_NGROK_334/, 10_000)
    expect(await twin.proc.exited).not.toBe(0)
    expect((await get(host, 'live')).status).toBe(200)

    await kill(holder, 2)
    const stranger = agent('bob-token', `http://${host}`)
    await stranger.waitForLog(/ERR_NGROK_334/, 10_000)
    expect(await stranger.proc.exited).not.toBe(0)
    // Alice's own new agent does get it.
    const back = agent('alice-token', `http://${host}`)
    await back.forwarding()
    expect((await get(host, 'back')).status).toBe(200)
  }, 30_000)

  test('a frozen agent (SIGSTOP: connection open, heartbeats stopped) is taken over after two missed heartbeats', async () => {
    const host = 'frozen.warren.localhost'
    const config = join(files, 'heartbeat.yml')
    writeFileSync(config, 'version: 3\nagent:\n  heartbeat_interval: 1s\n  heartbeat_tolerance: 30s\n')
    const frozen = agent('alice-token', `http://${host}`, ['--config', config])
    await frozen.forwarding()
    frozen.proc.kill('SIGSTOP')
    // Its last heartbeat was at most 1 s before the stop: 2 s later it has missed two. (A holder whose
    // heartbeats are on time keeps its URL: the test above.)
    await Bun.sleep(2500)
    const next = agent('alice-token', `http://${host}`)
    await next.forwarding()
    expect((await get(host, 'next')).status).toBe(200)
    // Woken up, the old agent hears that its endpoint is gone, and stops.
    frozen.proc.kill('SIGCONT')
    await frozen.waitForLog(/the edge stopped an endpoint/, 5000)
    expect((await get(host, 'still-next')).status).toBe(200)
  }, 30_000)

  // Last: it stops the shared edge.
  test('SIGTERM while a request waits for a killed agent: it fails at once (the agent cannot come back), and the edge exits 0 without waiting reconnect_wait', async () => {
    const host = 'gone.warren.localhost'
    const gone = agent('alice-token', `http://${host}`)
    await gone.forwarding()
    const disconnects = edge.logs().split('\n').filter((l) => /"msg":"agent disconnected"/.test(l)).length
    await kill(gone, disconnects + 1)
    const waiting = get(host, 'waiting')
    await Bun.sleep(300)
    const signalled = Date.now()
    edge.proc.kill('SIGTERM')
    const code = await Promise.race([edge.proc.exited, Bun.sleep(WAIT_S * 1000 + 5000).then(() => 'still running')])
    expect(code).toBe(0)
    expect(Date.now() - signalled).toBeLessThan(2500)
    const answer = await waiting
    expect(answer.status).toBe(502)
    expect(answer.at - signalled).toBeLessThan(1000)
  }, 30_000)
})
