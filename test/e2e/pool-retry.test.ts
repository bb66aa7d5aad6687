import type { Server } from 'bun'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { edgeFlags, startAgent, type AgentProcess } from './framework/agent.ts'
import { freePort } from './framework/ports.ts'
import { hostFetch, startEdge, type Edge } from './framework/process.ts'

// Pooled agent endpoints (two compiled `warren http` agents on one URL) against the compiled edge:
// a member killed with SIGKILL stops getting traffic at once, and a request it held without answering
// goes to the other member when the retry rule allows it (docs/agents.md "Pooling").
const KEY = 'e2e-pool-key'
let edge: Edge
const agents: AgentProcess[] = []
const upstreams: Server<undefined>[] = []

interface Origin {
  name: string
  server: Server<undefined>
  /** Requests seen, as `METHOD /path`, in arrival order (an upload is listed when it starts). */
  seen: string[]
  /** Upload bytes received so far on /upload. */
  uploaded: number
}

/**
 * An upstream that answers `{upstream: name}`; `/hang` never answers when `hang` is set (it holds the
 * request until the agent in front of it dies), and `/upload` reads the body before answering.
 */
function origin(name: string, options: { hang?: boolean } = {}): Origin {
  const o: Origin = { name, server: undefined as unknown as Server<undefined>, seen: [], uploaded: 0 }
  o.server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      const path = new URL(req.url).pathname
      o.seen.push(`${req.method} ${path}`)
      if (path === '/upload' && req.body) for await (const chunk of req.body) o.uploaded += chunk.length
      else if (req.body) await req.arrayBuffer()
      if (path === '/hang' && options.hang) await new Promise(() => {})
      return Response.json({ upstream: name, method: req.method })
    },
  }) as Server<undefined>
  upstreams.push(o.server)
  return o
}

/** Two agents pooling `http://<host>`, each in front of its own origin; resolves once both are bound. */
async function pool(host: string, a: Origin, b: Origin): Promise<{ agentA: AgentProcess; agentB: AgentProcess }> {
  const start = (o: Origin) => {
    const agent = startAgent(['http', String(o.server.port), '--url', `http://${host}`, '--pooling-enabled', ...edgeFlags(edge, 'alice-token')])
    agents.push(agent)
    return agent
  }
  const agentA = start(a)
  await agentA.forwarding()
  const agentB = start(b)
  await agentB.forwarding()
  return { agentA, agentB }
}

async function who(host: string, path = '/', init: RequestInit = {}): Promise<{ status: number; upstream: string | undefined }> {
  const res = await hostFetch(edge, host, path, init)
  const text = await res.text()
  let upstream: string | undefined
  try {
    upstream = (JSON.parse(text) as { upstream?: string }).upstream
  } catch {}
  return { status: res.status, upstream }
}

/** Sends GETs until `name` answered one, so round-robin hands the next request to the other member. */
async function lastServedBy(host: string, name: string): Promise<void> {
  for (let i = 0; i < 4; i++) if ((await who(host)).upstream === name) return
  throw new Error(`${name} never answered on ${host}`)
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(10)
  }
}

function retryLines(host: string): Record<string, unknown>[] {
  return edge
    .logs()
    .split('\n')
    .filter((l) => l.includes('retrying on another member') && l.includes(host))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

beforeAll(async () => {
  edge = await startEdge({
    // reconnect_wait 5: a request that went to the killed member and waited for it would take 5 s.
    config: `api_keys: [${KEY}]
accounts:
  - name: alice
    authtokens: [alice-token]
    domains: ["*.pool.warren.localhost"]
agents:
  reconnect_wait: 5
  reconnect_grace: 60
`,
  })
})
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()))
})
afterAll(async () => {
  await edge?.stop()
  for (const u of upstreams) u.stop(true)
})

describe('pooled agent endpoints: a member that fails before answering (compiled binaries)', () => {
  test('after SIGKILL of one member, 30 consecutive requests all get 200 from the live one, none waits', async () => {
    const host = 'killed.pool.warren.localhost'
    const a = origin('A')
    const b = origin('B')
    const { agentA } = await pool(host, a, b)
    const seen = new Set<string | undefined>()
    for (let i = 0; i < 4; i++) seen.add((await who(host)).upstream)
    expect([...seen].sort()).toEqual(['A', 'B'])

    agentA.proc.kill('SIGKILL')
    await agentA.proc.exited
    const started = performance.now()
    const answers = []
    for (let i = 0; i < 30; i++) answers.push(await who(host, '/after-kill'))
    const elapsed = performance.now() - started
    expect(answers.filter((r) => r.status !== 200)).toEqual([])
    expect(answers.every((r) => r.upstream === 'B')).toBe(true)
    expect(b.seen.filter((s) => s === 'GET /after-kill').length).toBe(30)
    expect(a.seen.filter((s) => s === 'GET /after-kill').length).toBe(0)
    // Waiting once for the dead member (reconnect_wait) would alone take 5 s.
    expect(elapsed).toBeLessThan(4000)
  })

  test('a GET the killed member held without answering is sent to the other member and gets its 200', async () => {
    const host = 'inflight-get.pool.warren.localhost'
    const a = origin('A', { hang: true })
    const b = origin('B')
    const { agentA } = await pool(host, a, b)
    await lastServedBy(host, 'B')

    const pending = who(host, '/hang')
    await until(() => a.seen.includes('GET /hang'), 5000, 'A to hold GET /hang')
    agentA.proc.kill('SIGKILL')
    const res = await pending
    expect(res).toEqual({ status: 200, upstream: 'B' })
    expect(b.seen).toContain('GET /hang')

    const lines = retryLines(host)
    expect(lines.length).toBe(1)
    expect(lines[0]).toMatchObject({ level: 'warn', method: 'GET', path: '/hang', request_sent: true })
    expect(String(lines[0]!.member)).toMatch(/^ep_/)
    expect(lines[0]!.retry_member).not.toBe(lines[0]!.member)
    expect(['session closed', 'stream reset', 'stream closed']).toContain(String(lines[0]!.reason))
    const metrics = await (await fetch(`http://127.0.0.1:${edge.apiPort}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text()
    expect(metrics).toMatch(new RegExp(`warren_pool_retries_total\\{endpoint="http://${host.replaceAll('.', '\\.')}",reason="${lines[0]!.reason}"\\} 1`))
  })

  test('a POST the killed member held is not sent again: it reached the upstream and POST is not idempotent', async () => {
    const host = 'inflight-post.pool.warren.localhost'
    const a = origin('A', { hang: true })
    const b = origin('B')
    const { agentA } = await pool(host, a, b)
    await lastServedBy(host, 'B')

    const pending = who(host, '/hang', { method: 'POST', body: 'order=1' })
    await until(() => a.seen.includes('POST /hang'), 5000, 'A to hold POST /hang')
    agentA.proc.kill('SIGKILL')
    expect((await pending).status).toBe(502)
    expect(b.seen).not.toContain('POST /hang')
    expect(retryLines(host)).toEqual([])
  })

  test('a POST with a large streaming body is not retried when its member dies mid-upload', async () => {
    const host = 'upload.pool.warren.localhost'
    const a = origin('A')
    const b = origin('B')
    const { agentA } = await pool(host, a, b)
    await lastServedBy(host, 'B')

    // 64 KiB every 20 ms without a Content-Length (chunked): it streams and is never buffered.
    const chunk = new Uint8Array(64 * 1024).fill(120)
    let sent = 0
    let stop = false
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (stop || sent >= 64 * 1024 * 1024) return controller.close()
        await Bun.sleep(20)
        sent += chunk.length
        controller.enqueue(chunk)
      },
    })
    const pending = hostFetch(edge, host, '/upload', { method: 'POST', body, duplex: 'half' } as RequestInit).then(
      (res) => res.status,
      () => 0, // the edge may drop the connection instead of answering
    )
    await until(() => a.uploaded >= 256 * 1024, 10_000, 'A to receive 256 KiB of the upload')
    agentA.proc.kill('SIGKILL')
    const status = await pending
    stop = true
    expect([502, 0]).toContain(status)
    expect(b.seen).not.toContain('POST /upload')
    expect(retryLines(host)).toEqual([])
  })

  test('a member whose upstream is down refuses the stream: every request, POST too, is served by the other member', async () => {
    const host = 'upstream-down.pool.warren.localhost'
    const down = await freePort() // nothing listens here
    const b = origin('B')
    const agentA = startAgent(['http', String(down), '--url', `http://${host}`, '--pooling-enabled', ...edgeFlags(edge, 'alice-token')])
    agents.push(agentA)
    await agentA.forwarding()
    const agentB = startAgent(['http', String(b.server.port), '--url', `http://${host}`, '--pooling-enabled', ...edgeFlags(edge, 'alice-token')])
    agents.push(agentB)
    await agentB.forwarding()

    const answers = []
    for (let i = 0; i < 6; i++) answers.push(await who(host, '/order', i % 2 ? { method: 'POST', body: `n=${i}` } : {}))
    expect(answers).toEqual(Array.from({ length: 6 }, () => ({ status: 200, upstream: 'B' })))
    expect(b.seen.filter((s) => s.endsWith(' /order')).length).toBe(6)
    const lines = retryLines(host)
    expect(lines.length).toBeGreaterThanOrEqual(2) // round robin gave A about half of them
    for (const line of lines) expect(line).toMatchObject({ reason: 'stream refused', request_sent: false })
    expect(lines.some((l) => l.method === 'POST')).toBe(true)
  })

  test('alone in its pool, a member whose upstream is down still gets the client a 502 with the code', async () => {
    const host = 'alone-down.pool.warren.localhost'
    const agent = startAgent(['http', String(await freePort()), '--url', `http://${host}`, '--pooling-enabled', ...edgeFlags(edge, 'alice-token')])
    agents.push(agent)
    await agent.forwarding()
    const res = await hostFetch(edge, host, '/', { headers: { accept: 'application/json' } })
    expect(res.status).toBe(502)
    expect(await res.text()).toContain('ERR_WARREN_8012')
  })
})
