/**
 * bench/policy-cost.d/micro.ts: what the policy of bench/policy-cost costs in process, without
 * sockets: the on_http_request phase run over fresh exchanges shaped like wrk's requests (GET with
 * only a Host header, client 127.0.0.1). Prints µs per request for the 10-rule policy, the one-rule
 * policy and the bare exchange, so a change to src/policy/ can be judged before a full bench run.
 *
 * Usage: bun bench/policy-cost.d/micro.ts [--iterations 300000] [--rounds 300] [--path /hello]
 *        bun --cpu-prof --cpu-prof-dir=/tmp/prof bench/policy-cost.d/micro.ts   (then bench/lib/cpuprofile-top.ts)
 */
import { parseArgs } from 'node:util'
import { parse } from 'yaml'
import { compilePolicy, runPhase, validatePolicy, type CompiledPolicy } from '../../src/policy/engine.ts'
import { exchangeFor } from '../../src/policy/test-runner.ts'
import type { EndpointInfo, HttpExchange } from '../../src/policy/types.ts'

const { values } = parseArgs({
  options: { iterations: { type: 'string', default: '300000' }, rounds: { type: 'string', default: '300' }, path: { type: 'string', default: '/hello' } },
})
const iterations = Number(values.iterations)
const rounds = Number(values.rounds)
const path = values.path!

const ENDPOINT: EndpointInfo = { id: 'ep_bench', url: 'http://policy.bench.warren.localhost', scheme: 'http', host: 'policy.bench.warren.localhost', port: 80, binding: 'public' }

function load(text: string): CompiledPolicy {
  const doc = parse(text.replaceAll('__UPSTREAM_PORT__', '9')) as { traffic_policy: unknown }
  return compilePolicy(validatePolicy(doc.traffic_policy), { scheme: 'http', cloud: true })
}

const tenRules = load(await Bun.file(new URL('policy.yml', import.meta.url)).text())
const oneRule = load(`
traffic_policy:
  on_http_request:
    - expressions: ["req.method == 'POST'"]
      actions: [{type: custom-response, config: {status_code: 405, body: "no posts"}}]
    - actions: [{type: forward-external, config: {url: "http://127.0.0.1:9"}}]
`)

function exchange(): HttpExchange {
  return exchangeFor({ method: 'GET', url: path, headers: { host: ENDPOINT.host }, client_ip: '127.0.0.1' }, ENDPOINT)
}

type Run = (ex: HttpExchange) => Promise<unknown> | unknown

/** Nanoseconds per iteration of `run` over fresh exchanges, for one round of `n`. */
async function round(run: Run, n: number): Promise<number> {
  const start = Bun.nanoseconds()
  for (let i = 0; i < n; i++) await run(exchange())
  return (Bun.nanoseconds() - start) / n
}

/**
 * The best round of each variant, short rounds interleaved: on a shared machine the quickest round is
 * the least disturbed one, and interleaving spreads the disturbance over all variants alike.
 */
async function measure(runs: readonly Run[]): Promise<number[]> {
  const best = runs.map(() => Infinity)
  const n = Math.max(1, Math.floor(iterations / rounds))
  for (let r = 0; r < rounds; r++) for (const [i, run] of runs.entries()) best[i] = Math.min(best[i]!, await round(run, n))
  return best
}

// The outcome must be what the benchmark expects: forwarded, with the five headers added.
const check = exchange()
const outcome = await runPhase(tenRules.on_http_request, check)
const added = ['x-client-ip', 'x-client-port', 'x-route', 'x-edge', 'x-request-method'].filter((h) => check.headers.has(h))
if (outcome.kind !== 'forward' || added.length !== 5) throw new Error(`unexpected result: ${outcome.kind}, headers ${added.join(' ')}`)

const [bare, ten, one] = (await measure([() => undefined, (ex) => runPhase(tenRules.on_http_request, ex), (ex) => runPhase(oneRule.on_http_request, ex)])) as [number, number, number]
const us = (ns: number) => (ns / 1000).toFixed(2)
console.log(`GET ${path}, ${iterations} iterations, best of ${rounds} interleaved rounds (µs per request, exchange creation subtracted)`)
console.log(`exchange only     ${us(bare)} µs`)
console.log(`10-rule policy    ${us(ten - bare)} µs`)
console.log(`one-rule policy   ${us(one - bare)} µs`)
