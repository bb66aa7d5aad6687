import type { Socket, TCPSocketListener } from 'bun'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { redisUnavailable, startRedis, type RedisServer } from '../helpers/redis.ts'
import { startAgent, type AgentProcess } from './framework/agent.ts'
import { selfSigned } from './framework/certs.ts'
import { freePort } from './framework/ports.ts'
import { eventually, startEdge, WARREN_BIN, type Edge } from './framework/process.ts'
import { echoRoundTrip, startEchoServer, startTlsAnswerOnce, tlsRoundTrip } from './framework/tcp.ts'
import { startUpstream } from './framework/upstreams.ts'

// Three `warren serve` nodes sharing a redis-server on loopback (cluster.redis): an agent on one node
// is served through the others; a node killed, Redis killed and restarted, split brain.
const skip = redisUnavailable()
if (skip) console.warn(`cluster-redis e2e skipped: ${skip}`)

/** The lease the nodes run with (s): a node killed is gone from the others' view within it. */
const LEASE_S = 2
const API_KEY = 'cluster-key'

let redis: RedisServer
/** One certs/ directory for every node: one development CA, so an agent trusts whichever node it reaches. */
const certs = mkdtempSync(join(tmpdir(), 'warren-cluster-certs-'))
const caPath = join(certs, 'dev-ca.pem')
const nodes: Record<'a' | 'b' | 'c', Edge> = {} as never
const agents: AgentProcess[] = []
const upstream = startUpstream('cluster-origin')
let balancer: Balancer
/**
 * Each node's TLS port on a loopback address of its own (a 127.0.0.1, b 127.0.0.2, c 127.0.0.3): tcp
 * endpoints listen on that address, so every node can open the same tcp port, as on separate machines.
 */
const tlsAddress = new Map<Edge, string>()
/** The one tcp port of the account: every node listens on it for the tcp endpoint node a's agent holds. */
let tcpPort: number

function config(node: string, linkPort: number): string {
  return `api_keys: [${API_KEY}]
public_ports: {http: 80, https: 443}
accounts:
  - name: alice
    authtokens: [alice-token]
    domains: ["*.warren.localhost"]
    tcp_ports: "${tcpPort}"
agents:
  reconnect_wait: 8
# Idle keep-alive link streams from the other nodes count as in flight: a stopped node waits this long for them.
shutdown: {drain: 2s}
cluster:
  redis: ${redis.url}
  node: ${node}
  link: {listen: 127.0.0.1:${linkPort}}
  lease: ${LEASE_S}
`
}

async function startNode(name: 'a' | 'b' | 'c'): Promise<Edge> {
  const address = `127.0.0.${{ a: 1, b: 2, c: 3 }[name]}:${await freePort()}`
  // The last --https wins over the one startEdge passes (127.0.0.1).
  const edge = await startEdge({ config: config(name, await freePort()), args: ['--certs', certs, '--https', address] })
  tlsAddress.set(edge, address)
  edge.httpsPort = Number(address.split(':')[1])
  await edge.waitForLog(/"msg":"cluster node joined"/, 10_000)
  return edge
}

/**
 * What sits in front of the nodes' agent ports in a real deployment (a TCP load balancer, or DNS
 * with several addresses): each connection goes to the first node that accepts it, in order.
 */
interface Balancer {
  port: number
  stop(): void
}

async function startBalancer(backends: () => number[]): Promise<Balancer> {
  type Conn = { peer: Socket<undefined> | undefined; queue: Uint8Array[] }
  const dial = async (client: Socket<Conn>) => {
    for (const port of backends()) {
      try {
        const peer = await Bun.connect<undefined>({
          hostname: '127.0.0.1',
          port,
          socket: {
            data: (_s, chunk) => void client.write(chunk),
            close: () => void client.end(),
            error: () => void client.end(),
          },
        })
        client.data.peer = peer
        for (const chunk of client.data.queue) peer.write(chunk)
        client.data.queue = []
        return
      } catch {
        // That node is down: the next one.
      }
    }
    client.end()
  }
  const listener: TCPSocketListener<Conn> = Bun.listen<Conn>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(socket) {
        socket.data = { peer: undefined, queue: [] }
        void dial(socket)
      },
      data(socket, chunk) {
        if (socket.data.peer) socket.data.peer.write(chunk)
        else socket.data.queue.push(chunk.slice())
      },
      close: (socket) => void socket.data.peer?.end(),
      error: () => {},
    },
  })
  return { port: listener.port, stop: () => listener.stop(true) }
}

/** One HTTPS request for `url` sent to `node`'s TLS port (as a DNS name pointing at that node would). */
async function get(node: Edge, url: string, maxTimeS = 20): Promise<{ status: number; body: string }> {
  const u = new URL(url)
  const proc = Bun.spawn(['curl', '-s', '--max-time', String(maxTimeS), '--http1.1', '-w', '\n%{http_code}', '--cacert', caPath, '--connect-to', `${u.hostname}:443:${tlsAddress.get(node)}`, url], { stdout: 'pipe' })
  const out = await new Response(proc.stdout).text()
  await proc.exited
  const i = out.lastIndexOf('\n')
  return { status: Number(out.slice(i + 1)) || 0, body: out.slice(0, Math.max(i, 0)) }
}

async function api(node: Edge, path: string): Promise<any> {
  const res = await fetch(`http://127.0.0.1:${node.apiPort}${path}`, { headers: { authorization: `Bearer ${API_KEY}` } })
  return res.json()
}

function agentFlags(port: number): string[] {
  return ['--server-addr', `127.0.0.1:${port}`, '--server-ca', caPath, '--authtoken', 'alice-token', '--log-format', 'json', '--inspect=false']
}

beforeAll(async () => {
  if (skip) return
  redis = await startRedis()
  tcpPort = await freePort()
  // Node a first: it creates the development CA in the shared certs/; b and c load it.
  nodes.a = await startNode('a')
  ;[nodes.b, nodes.c] = await Promise.all([startNode('b'), startNode('c')])
  balancer = await startBalancer(() => [nodes.a.agentPort, nodes.b.agentPort, nodes.c.agentPort])
})
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()))
  balancer?.stop()
  await Promise.all(Object.values(nodes).map((n) => n.stop()))
  await redis?.stop()
  upstream.stop(true)
  rmSync(certs, { recursive: true, force: true })
})

/** The first agent (started on node a) and its URL: later tests move it from node to node. */
let url: string
let agent: AgentProcess

describe.skipIf(skip !== undefined)('three nodes sharing Redis', () => {

  test('an agent on node a is served through nodes b and c', async () => {
    agent = startAgent(['http', String(upstream.port), ...agentFlags(balancer.port)])
    agents.push(agent)
    url = (await agent.forwarding())[0]!
    expect(url).toMatch(/^https:\/\/[0-9a-f]+\.warren\.localhost$/)
    await nodes.a.waitForLog(/"msg":"agent endpoint bound"/)
    // b and c learn of it by pub/sub: at once, give or take a message.
    for (const node of [nodes.b, nodes.c]) expect(await eventually(async () => (await get(node, `${url}/warm`)).status === 200, 5000, 50)).toBe(true)
    for (const [name, node] of Object.entries(nodes)) {
      for (let i = 0; i < 5; i++) {
        const r = await get(node, `${url}/via/${name}/${i}`)
        expect(r.status).toBe(200)
        expect(JSON.parse(r.body).path).toBe(`/via/${name}/${i}`)
      }
    }
    expect(upstream.seen.filter((r) => r.path.startsWith('/via/')).length).toBe(15)
  })

  test('/api/tunnel-sessions and /api/endpoints on node c list the session and endpoint node a holds; a restart through c reaches the agent', async () => {
    const onA = (await api(nodes.a, '/tunnel-sessions')).tunnel_sessions as { id: string }[]
    expect(onA.length).toBe(1)
    for (const node of [nodes.b, nodes.c]) {
      expect(await eventually(async () => ((await api(node, '/tunnel-sessions')).tunnel_sessions as { id: string }[]).some((s) => s.id === onA[0]!.id), 5000, 100)).toBe(true)
      const endpoints = (await api(node, '/endpoints')).endpoints as { url: string }[]
      expect(endpoints.some((e) => e.url === url)).toBe(true)
    }
    // A restart through node c runs on node a (by the node's Redis channel) and the agent answers it.
    const restarts = agent.logs().match(/session lost; reconnecting|restart/g)?.length ?? 0
    const res = await fetch(`http://127.0.0.1:${nodes.c.apiPort}/tunnel-sessions/${onA[0]!.id}/restart`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}` } })
    expect(res.status).toBe(204)
    expect(await eventually(async () => (agent.logs().match(/session lost; reconnecting|restart/g)?.length ?? 0) > restarts, 10_000, 50)).toBe(true)
    // It reconnects (to node a again, first behind the balancer) and answers everywhere as before.
    for (const node of Object.values(nodes)) expect(await eventually(async () => (await get(node, `${url}/back`, 5)).status === 200, 10_000, 100)).toBe(true)
  })

  test('a tcp and a tls (passthrough) endpoint whose agents are on node a answer through node b, bytes intact', async () => {
    const echo = startEchoServer()
    const cert = selfSigned(['pass.warren.localhost'])
    // Behind the agent: a TLS server of its own (the edge passes the TLS through) that echoes the first chunk and closes.
    const backend = await startTlsAnswerOnce(cert)
    const onA = [
      startAgent(['tcp', String(echo.port), '--url', `tcp://tcp.warren.localhost:${tcpPort}`, ...agentFlags(nodes.a.agentPort)]),
      startAgent(['tls', String(backend.port), '--url', 'tls://pass.warren.localhost', ...agentFlags(nodes.a.agentPort)]),
    ]
    agents.push(...onA)
    try {
      await Promise.all(onA.map((a) => a.forwarding()))
      const bHost = tlsAddress.get(nodes.b)!.split(':')[0]!
      // Node b opens the tcp port on its own address once it learns of the endpoint (pub/sub).
      expect(await eventually(async () => (await echoRoundTrip(tcpPort, 5, bHost).catch(() => ({ receivedBytes: 0 }))).receivedBytes === 5, 5000, 100)).toBe(true)
      for (let i = 0; i < 5; i++) {
        const r = await echoRoundTrip(tcpPort, 512 * 1024, bHost)
        expect(r.receivedBytes).toBe(512 * 1024)
        expect(r.received).toBe(r.sent)
      }
      // TLS through b: the certificate the client sees is the backend's (passed through, not the edge's).
      const [bTlsHost, bTlsPort] = tlsAddress.get(nodes.b)!.split(':')
      const roundTrip = () => tlsRoundTrip({ host: bTlsHost!, port: Number(bTlsPort), servername: 'pass.warren.localhost', ca: cert.cert, message: 'through node b\n' })
      expect(await eventually(async () => (await roundTrip().catch(() => ({ text: '' }))).text === 'through node b\n', 5000, 100)).toBe(true)
      for (let i = 0; i < 5; i++) expect(await roundTrip()).toEqual({ text: 'through node b\n', subject: 'pass.warren.localhost' })
    } finally {
      await Promise.all(onA.map((a) => a.stop()))
      echo.stop(true)
      backend.close()
    }
  })

  test('an endpoint created through the API of node b is served by a and c; deleted through c, it is gone everywhere', async () => {
    const made = 'https://made.warren.localhost'
    const policy = JSON.stringify({ on_http_request: [{ actions: [{ type: 'custom-response', config: { body: 'made through b' } }] }] })
    const res = await fetch(`http://127.0.0.1:${nodes.b.apiPort}/endpoints`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ url: made, traffic_policy: policy }) })
    expect(res.status).toBe(201)
    const { id } = (await res.json()) as { id: string }
    for (const node of [nodes.a, nodes.c]) {
      expect(await eventually(async () => (await get(node, `${made}/`, 5)).body === 'made through b', 5000, 100)).toBe(true)
      expect(existsSync(join(node.policies, `api-${id}.yml`))).toBe(true)
    }
    const del = await fetch(`http://127.0.0.1:${nodes.c.apiPort}/endpoints/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${API_KEY}` } })
    expect(del.status).toBe(204)
    for (const node of Object.values(nodes)) {
      // Gone from every node's table and policies/; its name no longer answers (no endpoint, no certificate: the handshake fails).
      expect(await eventually(async () => ((await api(node, '/endpoints')).endpoints as { id: string }[]).every((e) => e.id !== id), 5000, 100)).toBe(true)
      expect(existsSync(join(node.policies, `api-${id}.yml`))).toBe(false)
      expect((await get(node, `${made}/`, 5)).status).not.toBe(200)
    }
  })

  test('pooling across nodes: two agents of one pooled URL on nodes b and c share the requests reaching node a', async () => {
    const [onB, onC] = [startUpstream('pool-on-b'), startUpstream('pool-on-c')]
    const pooled = 'https://pool.warren.localhost'
    const pa = startAgent(['http', String(onB.port), '--url', pooled, '--pooling-enabled', ...agentFlags(nodes.b.agentPort)])
    const pc = startAgent(['http', String(onC.port), '--url', pooled, '--pooling-enabled', ...agentFlags(nodes.c.agentPort)])
    agents.push(pa, pc)
    try {
      await Promise.all([pa.forwarding(), pc.forwarding()])
      expect(await eventually(async () => ((await api(nodes.a, '/endpoints')).endpoints as { url: string }[]).filter((e) => e.url === pooled).length === 2, 5000, 100)).toBe(true)
      // One keep-alive connection: each request picks its pool member (a fresh HTTPS connection picks
      // twice, at the TLS front and per request, which with two members lands on the same one each time).
      const u = new URL(pooled)
      const urls = Array.from({ length: 20 }, (_, i) => `${pooled}/p/${i}`)
      const proc = Bun.spawn(['curl', '-s', '--max-time', '20', '--http1.1', '-w', '\n', '--cacert', caPath, '--connect-to', `${u.hostname}:443:${tlsAddress.get(nodes.a)}`, ...urls], { stdout: 'pipe' })
      const bodies = (await new Response(proc.stdout).text()).trim().split('\n')
      await proc.exited
      expect(bodies.length).toBe(20)
      const seen = new Map<string, number>()
      for (const body of bodies) {
        const who = JSON.parse(body).upstream as string
        seen.set(who, (seen.get(who) ?? 0) + 1)
      }
      // Both agents served some, through their own nodes.
      expect([...seen.keys()].sort()).toEqual(['pool-on-b', 'pool-on-c'])
    } finally {
      await Promise.all([pa.stop(), pc.stop()])
      onB.stop(true)
      onC.stop(true)
    }
  })

  test('Redis killed and restarted under load: no request fails; a bind made meanwhile is served everywhere after', async () => {
    let ok = 0
    const failures: string[] = []
    let running = true
    // Sequential requests through b and c for the whole outage, bounded in count and time.
    const load = (async () => {
      for (let i = 0; running && i < 400; i++) {
        const node = i % 2 ? nodes.b : nodes.c
        const r = await get(node, `${url}/load/${i}`, 10)
        if (r.status === 200) ok++
        else failures.push(`${i % 2 ? 'b' : 'c'}: ${r.status} ${r.body.slice(0, 120)}`)
      }
    })()
    await Bun.sleep(500)
    await redis.kill()
    await nodes.b.waitForLog(/"code":"ERR_WARREN_7022"/, 5000)
    // While Redis is away a new agent binds on node c: accepted there, served by c at once.
    const late = startAgent(['http', String(upstream.port), ...agentFlags(nodes.c.agentPort)])
    agents.push(late)
    const [lateUrl] = await late.forwarding()
    expect((await get(nodes.c, `${lateUrl}/late`)).status).toBe(200)
    await Bun.sleep(1000)
    const outage = Date.now()
    await redis.restart()
    running = false
    await load
    console.log(`cluster e2e: ${ok} requests through b and c while Redis was killed and restarted, ${failures.length} failed`)
    expect(failures).toEqual([])
    expect(ok).toBeGreaterThan(5)
    // Recovery: c publishes again and b (resubscribed) serves the endpoint bound during the outage.
    expect(await eventually(async () => (await get(nodes.b, `${lateUrl}/after`, 5)).status === 200, 10_000, 100)).toBe(true)
    console.log(`cluster e2e: the endpoint bound while Redis was down answered through b ${Date.now() - outage} ms after Redis restarted`)
    await late.stop()
  }, 60_000)

  test('split brain: two agents bind one URL on two nodes while Redis is down; when it returns one keeps it, the other agent is told', async () => {
    const other = startUpstream('cluster-other')
    try {
      await redis.kill()
      // Both nodes noticed (their second outage): a bind now stays local.
      for (const node of [nodes.b, nodes.c]) expect(await eventually(async () => (node.logs().match(/"code":"ERR_WARREN_7022"/g)?.length ?? 0) >= 2, 5000)).toBe(true)
      const split = 'https://split.warren.localhost'
      const onB = startAgent(['http', String(upstream.port), '--url', split, ...agentFlags(nodes.b.agentPort)])
      const onC = startAgent(['http', String(other.port), '--url', split, ...agentFlags(nodes.c.agentPort)])
      agents.push(onB, onC)
      await Promise.all([onB.forwarding(), onC.forwarding()])
      await redis.restart()
      const told = () => [onB, onC].filter((a) => /the edge stopped an endpoint[^\n]*ERR_NGROK_334/.test(a.logs()))
      expect(await eventually(async () => told().length > 0, 10_000, 100)).toBe(true)
      await Bun.sleep(LEASE_S * 1000)
      expect(told().length).toBe(1)
      const winner = told()[0] === onB ? 'cluster-other' : 'cluster-origin'
      // Every node now sends the URL to the winner's agent.
      for (const node of Object.values(nodes))
        expect(await eventually(async () => JSON.parse((await get(node, `${split}/who`, 5)).body || '{}').upstream === winner, 5000, 100)).toBe(true)
      await Promise.all([onB.stop(), onC.stop()])
    } finally {
      other.stop(true)
    }
  }, 40_000)

  test('node a killed: its agent reconnects to b and keeps its URL; requests sent meanwhile are parked, none fails', async () => {
    const sessionsBefore = (await api(nodes.c, '/tunnel-sessions')).tunnel_sessions.length
    const killed = Date.now()
    nodes.a.proc.kill('SIGKILL')
    await nodes.a.proc.exited
    // Sent at once, through c and b: they wait for the agent (agents.reconnect_wait) instead of failing.
    const parked = await Promise.all([get(nodes.c, `${url}/parked/c`), get(nodes.b, `${url}/parked/b`)])
    const answered = Date.now() - killed
    expect(parked.map((r) => r.status)).toEqual([200, 200])
    await agent.waitForLog(/"msg":"session established"[^\n]*"resumed":true/, 10_000)
    // Not a new URL: the same one, now held by b.
    expect(agent.logs().match(/Forwarding /g)?.length).toBe(1)
    await nodes.b.waitForLog(/"msg":"agent endpoint resumed"|"msg":"agent endpoint bound"[^\n]*"tunnel"/)
    console.log(`cluster e2e: the URL answered again ${answered} ms after node a was killed (lease ${LEASE_S} s; allowed ${LEASE_S + 8} s)`)
    expect(answered).toBeLessThan((LEASE_S + 8) * 1000)
    // a is gone from the others' view within its lease: c lists the session (now on b) once.
    expect(await eventually(async () => (await api(nodes.c, '/tunnel-sessions')).tunnel_sessions.length === sessionsBefore, (LEASE_S + 2) * 1000, 100)).toBe(true)
    for (let i = 0; i < 5; i++) expect((await get(nodes.c, `${url}/after/${i}`)).status).toBe(200)
  }, 40_000)

  test('node b stopped (SIGTERM): its agent moves to c and keeps its URL', async () => {
    const established = agent.logs().match(/"msg":"session established"/g)!.length
    nodes.b.proc.kill('SIGTERM')
    expect(await nodes.b.proc.exited).toBe(0)
    expect(await eventually(async () => agent.logs().match(/"msg":"session established"/g)!.length > established, 10_000, 50)).toBe(true)
    expect(agent.logs().match(/Forwarding /g)?.length).toBe(1)
    expect(await eventually(async () => (await get(nodes.c, `${url}/moved`, 5)).status === 200, 10_000, 100)).toBe(true)
  }, 30_000)
})

describe.skipIf(skip !== undefined)('a node that cannot join is refused at start', () => {
  /** `warren serve` with this warren.yaml and free ports: exit code and what it printed. */
  async function serve(yaml: string, args: string[] = []): Promise<{ code: number; out: string }> {
    const dir = mkdtempSync(join(tmpdir(), 'warren-cluster-refused-'))
    try {
      writeFileSync(join(dir, 'warren.yaml'), yaml)
      const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()])
      const proc = Bun.spawn([WARREN_BIN, 'serve', '--config', join(dir, 'warren.yaml'), '--http', `127.0.0.1:${ports[0]}`, '--https', `127.0.0.1:${ports[1]}`, '--agent', `127.0.0.1:${ports[2]}`, '--api', `127.0.0.1:${ports[3]}`, '--log-format', 'json', ...args], { cwd: dir, stdout: 'pipe', stderr: 'pipe' })
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000)
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
      clearTimeout(timer)
      return { code, out: out + err }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }

  test('Redis unreachable: ERR_WARREN_7020, exit 1, the password not printed', async () => {
    const closed = await freePort()
    const r = await serve(`cluster: {redis: "redis://:hunter2-secret@127.0.0.1:${closed}", node: x, link: {listen: "127.0.0.1:${await freePort()}"}}\n`)
    expect(r.code).toBe(1)
    expect(r.out).toContain('ERR_WARREN_7020')
    expect(r.out).not.toContain('hunter2-secret')
  })

  test('a second node with the id of a running one: ERR_WARREN_7026 after two leases, exit 1', async () => {
    const started = Date.now()
    const r = await serve(`cluster: {redis: "${redis.url}", node: c, link: {listen: "127.0.0.1:${await freePort()}"}, lease: ${LEASE_S}}\n`)
    expect(r.code).toBe(1)
    expect(r.out).toContain('ERR_WARREN_7026')
    expect(Date.now() - started).toBeGreaterThanOrEqual(2 * LEASE_S * 1000)
    // The running node c was not disturbed.
    expect(await eventually(async () => (await get(nodes.c, `${url}/still`)).status === 200, 5000, 100)).toBe(true)
  })

  test('cluster.link.listen taken: ERR_WARREN_1010 naming the key, exit 1', async () => {
    const taken = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    try {
      const r = await serve(`cluster: {redis: "${redis.url}", node: y, link: {listen: "127.0.0.1:${taken.port}"}}\n`)
      expect(r.code).toBe(1)
      expect(r.out).toContain('ERR_WARREN_1010')
      expect(r.out).toContain(`Cannot listen on 127.0.0.1:${taken.port} (cluster.link.listen)`)
    } finally {
      taken.stop(true)
    }
  })
})
