/**
 * bench/policy-cost.d/rate-limit.ts: what one `rate-limit` action costs in process, per request:
 * `scope: endpoint` (the in-process sliding window, synchronous) and `scope: cluster` (one Lua script
 * in a redis-server on loopback per decision), the latter one decision at a time and with 32 in
 * flight, against the exchange alone. Prints the best round's µs of wall time and of this process's CPU per request; the CPU of
 * redis-server is not included (printed apart, from /proc, for the cluster rows).
 *
 * Usage: bun bench/policy-cost.d/rate-limit.ts [--iterations 20000] [--rounds 15]
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { startRedis } from '../../test/helpers/redis.ts'
import { RedisLimits } from '../../src/cluster/shared-limits.ts'
import { log } from '../../src/lib/log.ts'
import { compilePolicy, runPhase, validatePolicy } from '../../src/policy/engine.ts'
import { exchangeFor } from '../../src/policy/test-runner.ts'
import type { ClusterScope, EndpointInfo } from '../../src/policy/types.ts'

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '20000' }, rounds: { type: 'string', default: '15' } } })
const iterations = Number(values.iterations)
const rounds = Number(values.rounds)

const ENDPOINT: EndpointInfo = { id: 'ep_bench', url: 'http://limit.bench.warren.localhost', scheme: 'http', host: 'limit.bench.warren.localhost', port: 80, binding: 'public' }

function request() {
  return exchangeFor({ method: 'GET', url: '/', headers: { host: ENDPOINT.host }, client_ip: '127.0.0.1' }, ENDPOINT)
}

function rules(scope: 'endpoint' | 'cluster', clusterScope?: ClusterScope) {
  // Capacity far above what a round sends: every request passes, as most do on a real edge.
  const policy = { on_http_request: [{ actions: [{ type: 'rate-limit', config: { capacity: 2_000_000_000, rate: '60s', bucket_key: ['conn.client_ip'], scope } }] }] }
  return compilePolicy(validatePolicy(policy), { scheme: 'http', cloud: false, ...(clusterScope ? { clusterScope } : {}) }).on_http_request
}

function cpuMicros(): number {
  const u = process.cpuUsage()
  return u.user + u.system
}

/** redis-server's CPU time so far (µs), from /proc. */
function redisCpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100
}

async function measure(name: string, run: (n: number) => Promise<void>, redisPid?: number): Promise<void> {
  let best = { wall: Infinity, cpu: Infinity, redis: Infinity }
  for (let r = 0; r < rounds; r++) {
    const [t0, c0, r0] = [performance.now(), cpuMicros(), redisPid ? redisCpuMicros(redisPid) : 0]
    await run(iterations)
    const wall = ((performance.now() - t0) * 1000) / iterations
    const cpu = (cpuMicros() - c0) / iterations
    const redis = redisPid ? (redisCpuMicros(redisPid) - r0) / iterations : 0
    if (cpu < best.cpu) best = { wall, cpu, redis }
  }
  console.log(`${name.padEnd(44)} wall ${best.wall.toFixed(2).padStart(7)} µs/req   cpu ${best.cpu.toFixed(2).padStart(6)} µs/req${redisPid ? `   redis-server cpu ${best.redis.toFixed(2)} µs/req` : ''}`)
}

await measure('the exchange alone (no action)', async (n) => {
  for (let i = 0; i < n; i++) await runPhase([], request())
})
const local = rules('endpoint')
await measure('scope: endpoint', async (n) => {
  for (let i = 0; i < n; i++) await runPhase(local, request())
})

const redis = await startRedis()
const pid = Number(Bun.spawnSync(['sh', '-c', `pgrep -f "redis-server 127.0.0.1:${redis.port}"`]).stdout.toString().trim().split('\n')[0])
const limits = new RedisLimits(redis.url, log)
await limits.ready()
const shared = rules('cluster', { shared: limits })
const one = () => runPhase(shared, request())
try {
  await measure('scope: cluster, one decision at a time', async (n) => {
    for (let i = 0; i < n; i++) await one()
  }, pid || undefined)
  await measure('scope: cluster, 32 in flight', async (n) => {
    let next = 0
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next++ < n) await one()
    }))
  }, pid || undefined)
  if (limits.local['rate-limit']) console.log(`(${limits.local['rate-limit']} decisions fell back to the local counter: rerun on a quieter machine)`)
} finally {
  limits.close()
  await redis.stop()
}
