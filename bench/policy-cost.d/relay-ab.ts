/**
 * bench/policy-cost.d/relay-ab.ts: the byte relay's policy work of two source trees, A/B in one
 * process. For each tree: the upstream head of a policy-less request (plain), and on top of it the
 * one-rule and the 10-rule policy of bench/policy-cost (the exchange made from the head, the rules,
 * the head written with their edits). Rounds of 1,000 requests alternate between the variants and
 * the best round of each is kept, so both trees meet the same machine load; separate processes on a
 * shared machine scatter by more than the difference being measured.
 *
 * Usage: git archive main | tar -x -C /tmp/main-tree && ln -s $PWD/node_modules /tmp/main-tree/
 *        bun bench/policy-cost.d/relay-ab.ts /tmp/main-tree . [--rounds 300]
 * With BUN_JSC_logGC=true and --only TREE:VARIANT --requests N it runs N requests of one variant
 * between `START` and `END` lines on stderr: the GC cycles logged between them, against those of
 * `plain`, count what the policy allocates (a figure machine load does not move).
 */
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { parse } from 'yaml'

type Run = () => unknown

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { rounds: { type: 'string', default: '300' }, only: { type: 'string' }, requests: { type: 'string', default: '1000000' } },
})
if (positionals.length === 0) throw new Error('usage: bun bench/policy-cost.d/relay-ab.ts TREE [TREE…] [--rounds 300]')

const HOST = 'policy.bench.warren.localhost'
const ENDPOINT = { id: 'ep_bench', url: `http://${HOST}`, scheme: 'http', host: HOST, port: 80, binding: 'public' }
const TEN = (parse((await Bun.file(new URL('policy.yml', import.meta.url)).text()).replaceAll('__UPSTREAM_PORT__', '9')) as { traffic_policy: unknown }).traffic_policy
const ONE = parse(`
on_http_request:
  - expressions: ["req.method == 'POST'"]
    actions: [{type: custom-response, config: {status_code: 405, body: "no posts"}}]
  - actions: [{type: forward-external, config: {url: "http://127.0.0.1:9"}}]
`) as unknown
const RAW = Buffer.from(`GET /hello HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, 'latin1')
const FORWARDED = { clientIp: '127.0.0.1', proto: 'http' }

/** The three variants of one tree, made with that tree's own modules. */
async function variants(tree: string): Promise<Record<'plain' | 'one' | 'ten', Run>> {
  const root = resolve(tree)
  const { RequestHead } = await import(`${root}/src/http1/head.ts`)
  const { parseHead } = await import(`${root}/src/http1/parse-head.ts`)
  const { compilePolicy, relayPlan, runPhase, validatePolicy } = await import(`${root}/src/policy/engine.ts`)
  const { RelayExchange } = await import(`${root}/src/proxy/relay-exchange.ts`)
  const { upstreamHead } = await import(`${root}/src/proxy/relay-route.ts`)
  const parsed = parseHead(RAW, 0, RAW.length)
  const relay = (spec: unknown): Run => {
    const rules = relayPlan(compilePolicy(validatePolicy(spec), { scheme: 'http', cloud: true }))?.rules
    if (!rules) throw new Error(`${tree}: the policy has no relay plan`)
    return () => {
      const head = new RequestHead(parsed)
      const conn = { clientIp: '127.0.0.1', clientPort: 50000, serverIp: '127.0.0.1', serverPort: 80, startedAt: Date.now() }
      const ex = new RelayExchange(head, ENDPOINT, conn, 'http')
      const outcome = runPhase(rules, ex, { quiet: true })
      if (outcome instanceof Promise || outcome.kind !== 'forward') throw new Error(`${tree}: not forwarded`)
      return upstreamHead(head, ex, FORWARDED)
    }
  }
  return { plain: () => upstreamHead(new RequestHead(parsed), undefined, FORWARDED), one: relay(ONE), ten: relay(TEN) }
}

const trees = await Promise.all(positionals.map(async (tree) => ({ tree, runs: await variants(tree) })))

if (values.only) {
  const [tree, variant] = values.only.split(':') as [string, 'plain' | 'one' | 'ten']
  const run = trees.find((t) => t.tree === tree)?.runs[variant]
  if (!run) throw new Error(`--only ${values.only}: no such tree:variant`)
  const n = Number(values.requests)
  console.error('START')
  for (let i = 0; i < n; i++) run()
  console.error('END')
} else {
  const all = trees.flatMap(({ tree, runs }) => (['plain', 'one', 'ten'] as const).map((v) => ({ tree, v, run: runs[v], best: Infinity })))
  for (let r = 0; r < Number(values.rounds); r++)
    for (const cell of all) {
      const start = Bun.nanoseconds()
      for (let k = 0; k < 1000; k++) cell.run()
      cell.best = Math.min(cell.best, (Bun.nanoseconds() - start) / 1000)
    }
  console.log(`best of ${values.rounds} interleaved rounds of 1,000 (µs per request; policies on top of plain)`)
  for (const { tree } of trees) {
    const [plain, one, ten] = all.filter((c) => c.tree === tree).map((c) => c.best / 1000) as [number, number, number]
    console.log(`${tree.padEnd(24)} plain ${plain.toFixed(2)}   one rule +${(one - plain).toFixed(2)}   10 rules +${(ten - plain).toFixed(2)}`)
  }
}
