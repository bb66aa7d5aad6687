/**
 * bench/policy-cost.d/micro.ts: what the policy of bench/policy-cost costs in process, without
 * sockets: the on_http_request phase run over fresh exchanges shaped like wrk's requests (GET with
 * only a Host header, client 127.0.0.1). Prints µs per request for the 10-rule policy, the one-rule
 * policy and the bare exchange, so a change to src/policy/ can be judged before a full bench run.
 * The relay rows are what the byte relay adds for the same policies (src/proxy/relay-route.ts): the
 * exchange made from the parsed head, the rules, and the upstream head written with their edits,
 * against writing the head of a policy-less request.
 *
 * Usage: bun bench/policy-cost.d/micro.ts [--iterations 300000] [--rounds 300] [--path /hello]
 *        bun --cpu-prof --cpu-prof-dir=/tmp/prof bench/policy-cost.d/micro.ts   (then bench/lib/cpuprofile-top.ts)
 */
import { parseArgs } from 'node:util'
import { parse } from 'yaml'
import { RequestHead } from '../../src/http1/head.ts'
import { parseHead } from '../../src/http1/parse-head.ts'
import { compilePolicy, relayPlan, runPhase, validatePolicy, type CompiledPolicy } from '../../src/policy/engine.ts'
import { exchangeFor } from '../../src/policy/test-runner.ts'
import type { EndpointInfo, HttpExchange } from '../../src/policy/types.ts'
import { RelayExchange } from '../../src/proxy/relay-exchange.ts'
import { upstreamHead } from '../../src/proxy/relay-route.ts'

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

// The relay's request: the head wrk sends, parsed once (the engine parses each; that cost is the same with or without a policy).
const raw = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${ENDPOINT.host}\r\n\r\n`, 'latin1')
const parsed = parseHead(raw, 0, raw.length)
const CONN = { clientIp: '127.0.0.1', clientPort: 50000, serverIp: '127.0.0.1', serverPort: 80 }
const FORWARDED = { clientIp: '127.0.0.1', proto: 'http' }
function onRelay(policy: CompiledPolicy): Run {
  const rules = relayPlan(policy)?.rules
  if (!rules) throw new Error('the policy has no relay plan')
  return () => {
    const head = new RequestHead(parsed)
    const ex = new RelayExchange(head, ENDPOINT, { ...CONN, startedAt: Date.now() }, 'http')
    const outcome = runPhase(rules, ex, { quiet: true })
    if (outcome instanceof Promise || outcome.kind !== 'forward') throw new Error('not forwarded')
    return upstreamHead(head, ex, FORWARDED)
  }
}
const relayCheck = new RelayExchange(new RequestHead(parsed), ENDPOINT, { ...CONN, startedAt: Date.now() }, 'http')
runPhase(relayPlan(tenRules)!.rules!, relayCheck)
if (upstreamHead(new RequestHead(parsed), relayCheck, FORWARDED).toString('latin1').split('\r\nx-').length !== 9) throw new Error('relay: the five headers were not added')

const [bare, ten, one, relayBare, relayTen, relayOne] = (await measure([
  () => undefined,
  (ex) => runPhase(tenRules.on_http_request, ex),
  (ex) => runPhase(oneRule.on_http_request, ex),
  () => upstreamHead(new RequestHead(parsed), undefined, FORWARDED),
  onRelay(tenRules),
  onRelay(oneRule),
])) as [number, number, number, number, number, number]
const us = (ns: number) => (ns / 1000).toFixed(2)
console.log(`GET ${path}, ${iterations} iterations, best of ${rounds} interleaved rounds (µs per request, exchange creation subtracted)`)
console.log(`exchange only     ${us(bare)} µs`)
console.log(`10-rule policy    ${us(ten - bare)} µs`)
console.log(`one-rule policy   ${us(one - bare)} µs`)
console.log(`relay, no policy: upstream head ${us(relayBare - bare)} µs`)
console.log(`relay, 10-rule policy  +${us(relayTen - relayBare)} µs (exchange from the head, rules, edits in the head)`)
console.log(`relay, one-rule policy +${us(relayOne - relayBare)} µs`)
