import { afterAll, describe, expect, test } from 'bun:test'
import { edgeFlags, startAgent, type AgentProcess } from './framework/agent.ts'
import { curl } from './framework/curl.ts'
import { startEdge, type Edge } from './framework/process.ts'
import { startUpstream } from './framework/upstreams.ts'

// Every URL warren prints must work as printed: the agent's Forwarding line, the SDKs' url(), the API.
const upstream = startUpstream('printed-origin')
const CONFIG = `accounts:
  - name: alice
    authtokens: [alice-token]
    domains: ["*.warren.localhost"]
api_keys: [printed-key]
`
const edges: Edge[] = []
const agents: AgentProcess[] = []

async function edgeWith(extra = ''): Promise<Edge> {
  const edge = await startEdge({ config: CONFIG + extra })
  edges.push(edge)
  return edge
}

function agent(edge: Edge, args: string[]): AgentProcess {
  const a = startAgent([...args, ...edgeFlags(edge, 'alice-token')])
  agents.push(a)
  return a
}

/** curl on exactly the printed URL; `*.localhost` names are pinned to loopback as resolvers do. */
function curlAsPrinted(edge: Edge, url: string, path = '/echo') {
  const u = new URL(url)
  const port = u.port || (u.protocol === 'https:' ? '443' : '80')
  return curl(['--cacert', edge.caPath, '--resolve', `${u.hostname}:${port}:127.0.0.1`, `${url}${path}`])
}

async function apiUrls(edge: Edge): Promise<string[]> {
  const res = await fetch(`http://127.0.0.1:${edge.apiPort}/endpoints`, { headers: { authorization: 'Bearer printed-key' } })
  return ((await res.json()) as { endpoints: { url: string }[] }).endpoints.map((e) => e.url).sort()
}

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()))
  await Promise.all(edges.map((e) => e.stop()))
  upstream.stop(true)
})

describe('printed URLs', () => {
  test('on non-standard ports the Forwarding line and the API name the port, and curl works on the URL as printed', async () => {
    const edge = await edgeWith()
    const random = agent(edge, ['http', String(upstream.port)])
    const plain = agent(edge, ['http', String(upstream.port), '--url', 'http://plain.warren.localhost'])
    const [randomUrl] = await random.forwarding()
    const [plainUrl] = await plain.forwarding()
    expect(randomUrl).toMatch(new RegExp(`^https://[0-9a-f]{12}\\.warren\\.localhost:${edge.httpsPort}$`))
    expect(plainUrl).toBe(`http://plain.warren.localhost:${edge.httpPort}`)
    for (const url of [randomUrl!, plainUrl!]) {
      const res = await curlAsPrinted(edge, url)
      expect(res.status).toBe(200)
      expect(JSON.parse(res.body)).toMatchObject({ upstream: 'printed-origin', path: '/echo' })
    }
    expect(await apiUrls(edge)).toEqual([plainUrl!, randomUrl!].sort())
  })

  test('with public_ports {http: 80, https: 443} (a port map in front) URLs carry no port, as the world sees them', async () => {
    const edge = await edgeWith('public_ports: {http: 80, https: 443}\n')
    const a = agent(edge, ['http', String(upstream.port), '--url', 'https://mapped.warren.localhost'])
    expect(await a.forwarding()).toEqual(['https://mapped.warren.localhost'])
    expect(await apiUrls(edge)).toEqual(['https://mapped.warren.localhost'])
    // The port map is simulated by connecting to the listener; the Host has no port, as behind port 443.
    const res = await curl(['--cacert', edge.caPath, '--connect-to', `mapped.warren.localhost:443:127.0.0.1:${edge.httpsPort}`, 'https://mapped.warren.localhost/echo'])
    expect(res.status).toBe(200)
  })
})
