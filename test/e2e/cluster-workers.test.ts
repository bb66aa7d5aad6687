import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { redisUnavailable, startRedis, type RedisServer } from '../helpers/redis.ts'
import { edgeFlags, startAgent, type AgentProcess } from './framework/agent.ts'
import { eventually, logLines, startEdge, type Edge } from './framework/process.ts'
import { startUpstream } from './framework/upstreams.ts'

// `warren serve --workers 2` as a node of a cluster (cluster.redis): each worker joins as a node of
// its own (`a.w1`, `a.w2`), so an agent on one worker answers through the other and through node b.
const skip = redisUnavailable()
if (skip) console.warn(`cluster-workers e2e skipped: ${skip}`)

let redis: RedisServer
let a: Edge
let b: Edge
const agents: AgentProcess[] = []
const upstream = startUpstream('cluster-workers-origin')

function config(node: string): string {
  return `accounts:
  - name: alice
    authtokens: [alice-token]
    domains: ["*.warren.localhost"]
shutdown: {drain: 2s}
cluster:
  redis: ${redis.url}
  node: ${node}
  link: {listen: "127.0.0.1:0"}
  lease: 2
`
}

/** `count` plain HTTP requests to `host` on `e`, each on a fresh connection (the kernel spreads them over the workers). */
async function fetchMany(e: Edge, host: string, prefix: string, count: number): Promise<number[]> {
  const urls = Array.from({ length: count }, (_, i) => `http://127.0.0.1:${e.httpPort}${prefix}/${i}`)
  const proc = Bun.spawn(['curl', '-s', '--max-time', '60', '-w', '%{http_code}\\n', '-H', `host: ${host}`, '-H', 'connection: close', ...urls.flatMap((u) => ['-o', '/dev/null', u])], { stdout: 'pipe' })
  const out = await new Response(proc.stdout).text()
  await proc.exited
  return out.trim().split('\n').map(Number)
}

beforeAll(async () => {
  if (skip) return
  redis = await startRedis()
  b = await startEdge({ config: config('b') })
  await b.waitForLog(/"msg":"cluster node joined"/, 10_000)
  a = await startEdge({ config: config('a'), args: ['--workers', '2'] })
  await a.waitForLog(/"msg":"workers started"/, 20_000)
})
afterAll(async () => {
  await Promise.all(agents.map((x) => x.stop()))
  await a?.stop()
  await b?.stop()
  upstream.stop(true)
  await redis?.stop()
})

describe.skipIf(skip !== undefined)('--workers 2 in a cluster node', () => {
  test('each worker joins as its own node; an agent on one answers through both workers and through node b', async () => {
    const joined = logLines(a, 'cluster node joined').map((l) => l.node)
    expect(joined.sort()).toEqual(['a.w1', 'a.w2'])
    const agent = startAgent(['http', String(upstream.port), '--url', 'http://wk.warren.localhost', ...edgeFlags(a, 'alice-token')])
    agents.push(agent)
    await agent.forwarding()
    const host = 'wk.warren.localhost'
    // Node b and both workers learn of the endpoint through Redis.
    expect(await eventually(async () => (await fetchMany(b, host, '/warm-b', 1))[0] === 200, 5000, 50)).toBe(true)
    expect(await eventually(async () => (await fetchMany(a, host, '/warm-a', 4)).every((s) => s === 200), 5000, 50)).toBe(true)

    const throughB = await fetchMany(b, host, '/b', 20)
    expect(throughB.filter((s) => s !== 200)).toEqual([])
    const throughA = await fetchMany(a, host, '/a', 60)
    expect(throughA.length).toBe(60)
    expect(throughA.filter((s) => s !== 200)).toEqual([])
    const served = () => logLines(a, 'request').filter((l) => l.status === 200 && String(l.path).startsWith('/a/'))
    // Access lines trail the answers (they pass through the supervisor's output).
    expect(await eventually(async () => served().length === 60, 5000)).toBe(true)
    // SO_REUSEPORT spreads fresh connections by hash: with 60 both workers get some (a 2^-59 chance otherwise).
    expect([...new Set(served().map((l) => l.worker))].sort()).toEqual([1, 2])
    expect(upstream.seen.filter((r) => r.path.startsWith('/a/') || r.path.startsWith('/b/')).length).toBe(80)
  })
})
