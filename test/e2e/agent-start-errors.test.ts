import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { edgeFlags, startAgent, type AgentProcess } from './framework/agent.ts'
import { hostFetch, startEdge, WARREN_BIN, type Edge } from './framework/process.ts'
import { startUpstream } from './framework/upstreams.ts'

// What a newcomer's agent does when something is wrong: it says how to fix it, and never leaves
// half of its endpoints bound on the edge.
const upstream = startUpstream('start-errors-origin')
let edge: Edge
let dir: string
const agents: AgentProcess[] = []

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'warren-start-errors-'))
  edge = await startEdge({
    config: `accounts:
  - name: alice
    authtokens: [alice-token]
    domains: ["*.alice.warren.localhost"]
api_keys: [start-errors-key]
agents:
  reconnect_grace: 60
`,
  })
})
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()))
  await edge?.stop()
  upstream.stop(true)
  rmSync(dir, { recursive: true, force: true })
})

function agentConfig(name: string, endpoints: string): string {
  const path = join(dir, name)
  writeFileSync(path, `version: 3\nendpoints:\n${endpoints}`)
  return path
}

function run(args: string[]): AgentProcess {
  const a = startAgent(args)
  agents.push(a)
  return a
}

describe('warren start --all with one bad endpoint', () => {
  test('a traffic policy the edge would refuse: nothing is bound, the endpoint and the problem are named', async () => {
    const cfg = agentConfig(
      'bad-policy.yml',
      `  - name: good
    url: http://good-policy.alice.warren.localhost
    upstream: {url: ${upstream.port}}
  - name: broken
    url: http://broken.alice.warren.localhost
    upstream: {url: ${upstream.port}}
    traffic_policy:
      on_http_request:
        - expressions: ["req.nope == 1"]
          actions: [{type: nosuch}]
`,
    )
    const a = run(['start', '--all', '--config', cfg, ...edgeFlags(edge, 'alice-token')])
    expect(await a.proc.exited).toBe(1)
    expect(a.logs()).toContain('Endpoints are invalid; nothing was started')
    expect(a.logs()).toMatch(/endpoint "broken": traffic policy: .*unknown action type "nosuch".*\[ERR_WARREN_2001\]/)
    expect(a.logs()).toMatch(/endpoint "broken": traffic policy: .*invalid expression "req\.nope == 1".*\[ERR_WARREN_2002\]/)
    expect(a.logs()).not.toContain('    at ')
    expect(edge.logs()).not.toContain('good-policy.alice.warren.localhost')
  })

  test('a name the account does not own: the edge refuses it, the agent says goodbye and the good URL is released at once', async () => {
    const cfg = agentConfig(
      'not-owned.yml',
      `  - name: good
    url: http://good.alice.warren.localhost
    upstream: {url: ${upstream.port}}
  - name: foreign
    url: http://foreign.example.com
    upstream: {url: ${upstream.port}}
`,
    )
    const a = run(['start', '--all', '--config', cfg, ...edgeFlags(edge, 'alice-token')])
    expect(await a.proc.exited).toBe(1)
    expect(a.logs()).toContain('does not own foreign.example.com')
    // It had been bound, then went with the goodbye: not reserved for the 60 s grace period.
    await edge.waitForLog(/"msg":"agent endpoint bound".*good\.alice\.warren\.localhost/)
    await edge.waitForLog(/"msg":"agent endpoint removed".*good\.alice\.warren\.localhost.*"reason":"agent closed its session"/)
    const res = await hostFetch(edge, 'good.alice.warren.localhost', '/')
    expect(res.status).toBe(404)
    expect(res.headers.get('warren-error-code')).toBe('ERR_WARREN_3200')
  })
})

describe('authtoken and API key problems say how to fix them', () => {
  test('no authtoken: names warren config add-authtoken', async () => {
    const a = run(['http', String(upstream.port), ...edgeFlags(edge, '')])
    expect(await a.proc.exited).toBe(1)
    expect(a.logs()).toContain('An authtoken is required to connect to this warren edge. Save yours with `warren config add-authtoken TOKEN`')
    expect(a.logs()).toContain('ERR_WARREN_4002')
  })

  test('a wrong authtoken: names the operator and warren config add-authtoken', async () => {
    const a = run(['http', String(upstream.port), ...edgeFlags(edge, 'not-a-token')])
    expect(await a.proc.exited).toBe(1)
    expect(a.logs()).toMatch(/The authtoken you specified is invalid\. Ask the operator .* `warren config add-authtoken TOKEN`/)
  })

  test('warren api without a key names --api-key and WARREN_API_KEY', () => {
    const proc = Bun.spawnSync([WARREN_BIN, 'api', 'status', '--api-url', `http://127.0.0.1:${edge.apiPort}`], { env: { PATH: process.env.PATH ?? '', HOME: dir } })
    expect(proc.exitCode).toBe(1)
    const err = proc.stderr.toString()
    expect(JSON.parse(err)).toMatchObject({ error_code: 'ERR_WARREN_6001', status_code: 401, hint: expect.stringContaining('pass --api-key KEY or set WARREN_API_KEY') })
  })
})
