/**
 * Hot reload under load: the compiled edge serves a forward-external endpoint (loopback upstream) and
 * an edge-answered endpoint to keep-alive clients while its policies directory is rewritten RELOADS
 * times: valid edits in place, by rename, and by a slow editor that leaves the file empty for a
 * moment, plus a few broken files that must be refused without dropping the good endpoints. Not one
 * request may fail, no client may ever see an older config after a newer one, and the last config
 * must be the one served.
 *
 * Knobs (bench/soak raises them): WARREN_RELOADS (default 100), WARREN_RELOAD_CLIENTS (default 8).
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { mb, memoryOf, sampleRss } from '../e2e/framework/memory.ts'
import { eventually, startEdge, type Edge } from '../e2e/framework/process.ts'
import { startUpstream } from '../e2e/framework/upstreams.ts'

const RELOADS = Number(process.env.WARREN_RELOADS ?? 100)
const CLIENTS = Number(process.env.WARREN_RELOAD_CLIENTS ?? 8)
/** The whole load phase stops here even if reloads are slow (a bounded loop, as every load loop). */
const LOAD_BUDGET_MS = Math.max(25_000, RELOADS * 250)

const FWD = 'fwd.warren.localhost'
const EDGE = 'edge.warren.localhost'

const upstream = startUpstream('reload-up')

function forwardPolicy(gen: number): string {
  return `url: http://${FWD}
traffic_policy:
  on_http_request:
    - actions:
        - type: add-headers
          config: {headers: {x-gen: "${gen}"}}
        - type: forward-external
          config: {url: "http://127.0.0.1:${upstream.port}"}
`
}

function edgePolicy(gen: number): string {
  return `url: http://${EDGE}
traffic_policy:
  on_http_request:
    - actions:
        - type: custom-response
          config: {status_code: 200, body: "gen-${gen}"}
`
}

/** Broken files of several kinds; each must be refused while the good endpoints keep serving. */
const BROKEN: { desc: string; file: string; text: string }[] = [
  { desc: 'unknown action in a serving file', file: 'edge.yml', text: `url: http://${EDGE}\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: no-such-action}]\n` },
  { desc: 'YAML syntax error in a new file', file: 'broken.yml', text: 'url: [http://x.warren.localhost\n  : :\n' },
  { desc: 'a new file claiming a serving URL', file: 'steal.yml', text: edgePolicy(-1) },
  { desc: 'a non-terminating cloud policy', file: 'fwd.yml', text: `url: http://${FWD}\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: add-headers, config: {headers: {x-a: "1"}}}]\n` },
]

let edge: Edge
beforeAll(async () => {
  edge = await startEdge({ policies: { 'fwd.yml': forwardPolicy(0), 'edge.yml': edgePolicy(0) } })
})
afterAll(async () => {
  await edge?.stop()
  upstream.stop(true)
})

type SaveMode = 'in-place' | 'rename' | 'slow'

/**
 * Writes a policy in place (truncate + write, as most editors), by rename over (atomic save), or as a
 * slow editor: truncate, pause past the watcher's debounce, then write (the reload sees it empty).
 */
async function save(name: string, text: string, mode: SaveMode): Promise<void> {
  const path = join(edge.policies, name)
  if (mode === 'in-place') return writeFileSync(path, text)
  if (mode === 'slow') {
    writeFileSync(path, '')
    await Bun.sleep(200)
    return writeFileSync(path, text)
  }
  const tmp = join(edge.policies, `.${name}.tmp`)
  writeFileSync(tmp, text)
  renameSync(tmp, path)
}

/** `endpoints loaded` log lines so far, parsed. */
function reloads(): { version: number; errors: number }[] {
  return edge
    .logs()
    .split('\n')
    .filter((l) => l.includes('"endpoints loaded"'))
    .map((l) => JSON.parse(l) as { version: number; errors: number })
}

interface Tally {
  requests: number
  failures: string[]
}

/**
 * One keep-alive client (fetch pools its connection) asking one host in a loop until `stop`; checks
 * every answer and that the generation it sees never goes back.
 */
async function client(host: string, stop: { done: boolean }, tally: Tally): Promise<void> {
  let seen = -1
  const deadline = Date.now() + LOAD_BUDGET_MS
  while (!stop.done && Date.now() < deadline) {
    let gen: number
    try {
      const res = await fetch(`${edge.base}/load`, { headers: { host } })
      const text = await res.text()
      tally.requests++
      if (res.status !== 200) {
        tally.failures.push(`${host}: ${res.status} ${res.headers.get('warren-error-code') ?? ''} ${text.slice(0, 120)}`)
        continue
      }
      if (host === FWD) {
        const body = JSON.parse(text) as { upstream: string; headers: Record<string, string> }
        if (body.upstream !== 'reload-up') tally.failures.push(`${host}: answered by ${body.upstream}`)
        gen = Number(body.headers['x-gen'])
      } else {
        const m = /^gen-(\d+)$/.exec(text)
        if (!m) {
          tally.failures.push(`${host}: body ${JSON.stringify(text.slice(0, 120))}`)
          continue
        }
        gen = Number(m[1])
      }
    } catch (err) {
      tally.requests++
      tally.failures.push(`${host}: ${String(err)}`)
      continue
    }
    if (!(gen >= seen)) tally.failures.push(`${host}: generation went back from ${seen} to ${gen}`)
    seen = gen
  }
}

async function served(host: string): Promise<string> {
  const res = await fetch(`${edge.base}/check`, { headers: { host } })
  const text = await res.text()
  if (host === EDGE) return text
  return `x-gen ${(JSON.parse(text) as { headers: Record<string, string> }).headers['x-gen']}`
}

test(`${RELOADS} reloads under ${CLIENTS} keep-alive clients: 0 failed requests, the last config served`, async () => {
  const started = Date.now()
  const rss = sampleRss(edge.proc.pid)
  const stop = { done: false }
  const tally: Tally = { requests: 0, failures: [] }
  const clients = Array.from({ length: CLIENTS }, (_, i) => client(i % 2 ? FWD : EDGE, stop, tally))
  const problems: string[] = []
  let fwdGen = 0
  let brokenApplied = 0
  try {
    for (let i = 1; i <= RELOADS; i++) {
      if (Date.now() - started > LOAD_BUDGET_MS) {
        problems.push(`stopped after ${i - 1} reloads: over the ${LOAD_BUDGET_MS} ms budget`)
        break
      }
      // Every 25th round a broken file first; the next valid edit below repairs or outlives it.
      if (i % 25 === 0) {
        const broken = BROKEN[(i / 25 - 1) % BROKEN.length]!
        const before = reloads().length
        await save(broken.file, broken.text, i % 2 === 0 ? 'rename' : 'in-place')
        const refused = await eventually(async () => reloads().slice(before).some((r) => r.errors > 0), 3000)
        if (!refused) problems.push(`round ${i}: ${broken.desc} was not refused`)
        else brokenApplied++
        const still = await served(EDGE).catch((e) => String(e))
        if (still !== `gen-${i - 1}`) problems.push(`round ${i}: after ${broken.desc} ${EDGE} answers ${still}`)
        if (broken.file === 'broken.yml' || broken.file === 'steal.yml') edge.removePolicy(broken.file)
      }
      // Every 10th save of each file is a slow in-place one: before, the reload that read the file
      // empty dropped its endpoint (404s).
      const mode = (k: number): SaveMode => (k % 10 === 0 ? 'slow' : k % 3 === 0 ? 'rename' : 'in-place')
      await save('edge.yml', edgePolicy(i), mode(i))
      if (i % 5 === 0) {
        fwdGen = i
        await save('fwd.yml', forwardPolicy(i), mode(i / 5))
      }
      const ok = await eventually(async () => (await served(EDGE)) === `gen-${i}` && (await served(FWD)) === `x-gen ${fwdGen}`, 3000, 10)
      if (!ok) problems.push(`round ${i}: gen-${i} / x-gen ${fwdGen} not served within 3 s`)
    }
  } finally {
    stop.done = true
    await Promise.all(clients)
  }
  const seconds = (Date.now() - started) / 1000
  const peak = rss.stop()
  await Bun.sleep(1000)
  const settled = memoryOf(edge.proc.pid).rss
  console.log(
    `hot reload: ${RELOADS} reloads (${brokenApplied} broken files refused), ${tally.requests} requests, ${tally.failures.length} failed, ` +
      `${seconds.toFixed(1)} s; edge RSS peak ${mb(peak)} MB, settled ${mb(settled)} MB`,
  )

  expect(problems).toEqual([])
  expect(tally.failures.slice(0, 10)).toEqual([])
  expect(tally.requests).toBeGreaterThan(RELOADS) // the load actually ran alongside the reloads
  expect(brokenApplied).toBe(Math.floor(RELOADS / 25))
  // The final config is the one served.
  expect(await served(EDGE)).toBe(`gen-${RELOADS}`)
  expect(await served(FWD)).toBe(`x-gen ${fwdGen}`)
  expect(edge.proc.exitCode).toBeNull()
  // Snapshots replaced by a reload are let go: a leak per reload would show here.
  expect(settled).toBeLessThan(256 * 1024 * 1024)
}, LOAD_BUDGET_MS + 30_000)
