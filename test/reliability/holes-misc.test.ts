import ngrok from '@ngrok/ngrok'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { edgeFlags, startAgent, type AgentProcess } from '../e2e/framework/agent.ts'
import { curl } from '../e2e/framework/curl.ts'
import { freePort } from '../e2e/framework/ports.ts'
import { eventually, startEdge, type Edge } from '../e2e/framework/process.ts'
import { echoRoundTrip, startEchoServer } from '../e2e/framework/tcp.ts'
import { startUpstream } from '../e2e/framework/upstreams.ts'

// Issue 12's smaller holes, each through the compiled binaries and real clients: the inspector's
// replay API from another site, dotfiles behind file:// upstreams, a YAML alias bomb in policies/,
// and tcp:// names an account does not own.

const upstream = startUpstream('holes-origin')
const echo = startEchoServer()
const files = mkdtempSync(join(tmpdir(), 'warren-holes-files-'))
const agents: AgentProcess[] = []
let edge: Edge
let tcpPorts: number[]

const respond = (body: string) => `traffic_policy:\n  on_http_request:\n    - actions:\n        - type: custom-response\n          config: {status_code: 200, body: ${body}}\n`

/** Nine levels of nine aliases: 387 million strings once expanded (the "billion laughs"). */
const ALIAS_BOMB = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]', ...'bcdefghi'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`)].join('\n') + '\n'

beforeAll(async () => {
  writeFileSync(join(files, 'index.txt'), 'public\n')
  writeFileSync(join(files, '.env'), 'DATABASE_PASSWORD=hunter2\n')
  mkdirSync(join(files, '.git'))
  writeFileSync(join(files, '.git', 'config'), '[remote "origin"]\n')
  symlinkSync(join(files, '.git'), join(files, 'repo'))
  mkdirSync(join(files, '.well-known'))
  writeFileSync(join(files, '.well-known', 'security.txt'), 'Contact: mailto:security@example.com\n')
  tcpPorts = [await freePort(), await freePort(), await freePort()]
  edge = await startEdge({
    config: `accounts:
  - name: alice
    authtokens: [alice-token]
    domains: ["*.alice.warren.localhost"]
    tcp_ports: "${tcpPorts.join(',')}"
  - name: bob
    authtokens: [bob-token]
    domains: ["*.bob.warren.localhost"]
`,
    policies: { 'good.yml': `url: http://good.warren.localhost\n${respond('good')}` },
  })
})

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()))
  await edge?.stop()
  upstream.stop(true)
  echo.stop(true)
  rmSync(files, { recursive: true, force: true })
})

function agent(args: string[]): AgentProcess {
  const a = startAgent(args)
  agents.push(a)
  return a
}

/** curl through the edge's HTTP port with a Host header. */
function viaEdge(host: string, path: string, extra: string[] = []) {
  return curl(['-H', `Host: ${host}`, ...extra, `http://127.0.0.1:${edge.httpPort}${path}`])
}

describe('file:// upstreams and dotfiles', () => {
  test('warren http file://… answers 404 for dotfiles and leaves them out of the listing', async () => {
    const a = agent(['http', `file://${files}`, '--url', 'http://files.alice.warren.localhost', ...edgeFlags(edge, 'alice-token')])
    await a.forwarding()
    const host = 'files.alice.warren.localhost'
    expect((await viaEdge(host, '/index.txt')).body).toBe('public\n')
    for (const path of ['/.env', '/.git/config', '/%2eenv', '/repo/config', '/.git/']) {
      const r = await viaEdge(host, path)
      expect({ path, status: r.status, leaked: r.body.includes('hunter2') || r.body.includes('remote') }).toEqual({ path, status: 404, leaked: false })
    }
    const listing = await viaEdge(host, '/')
    expect(listing.status).toBe(200)
    expect(listing.body).toContain('index.txt')
    expect(listing.body).not.toContain('.env')
    expect(listing.body).not.toContain('.git')
    expect((await viaEdge(host, '/.well-known/security.txt')).body).toBe('Contact: mailto:security@example.com\n')
  })

  test('warren start with upstream.dotfiles: true serves them (the opt-in)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-holes-cfg-'))
    try {
      const config = join(dir, 'agent.yml')
      writeFileSync(config, `version: 3\nendpoints:\n  - name: site\n    url: http://dotfiles.alice.warren.localhost\n    upstream: {url: "file://${files}", dotfiles: true}\n`)
      const a = agent(['start', 'site', '--config', config, ...edgeFlags(edge, 'alice-token')])
      await a.forwarding()
      const r = await viaEdge('dotfiles.alice.warren.localhost', '/.env')
      expect(r.status).toBe(200)
      expect(r.body).toBe('DATABASE_PASSWORD=hunter2\n')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('the inspector replay API', () => {
  test('a cross-site text/plain POST is refused and reaches no upstream; same-origin JSON replays', async () => {
    const port = await freePort()
    const web = `http://127.0.0.1:${port}`
    const a = agent(['http', String(upstream.port), '--url', 'http://inspect.alice.warren.localhost', ...edgeFlags(edge, 'alice-token', { webAddr: `127.0.0.1:${port}` })])
    await a.forwarding()
    await a.waitForLog(/Web Interface/)
    expect((await viaEdge('inspect.alice.warren.localhost', '/transfer', ['-d', 'amount=100'])).status).toBe(200)
    let id = ''
    expect(
      await eventually(async () => {
        const list = (await (await fetch(`${web}/api/requests/http`)).json()) as { requests: { id: string; duration_ms: number | null }[] }
        id = list.requests[0]?.id ?? ''
        return list.requests.length === 1 && list.requests[0]!.duration_ms !== null
      }, 3000),
    ).toBe(true)
    const seen = upstream.seen.length

    // What a page on evil.com can make the browser send without a CORS preflight.
    const attack = await curl(['-X', 'POST', '-H', 'Origin: http://evil.com', '-H', 'Sec-Fetch-Site: cross-site', '-H', 'Content-Type: text/plain', '--data-binary', JSON.stringify({ id }), `${web}/api/requests/http`])
    expect(attack.status).toBe(403)
    expect(JSON.parse(attack.body)).toMatchObject({ error: { code: 'ERR_WARREN_6011' } })
    const form = await curl(['-X', 'POST', '-H', 'Origin: http://evil.com', '--data-binary', JSON.stringify({ id }), `${web}/api/requests/http`])
    expect(form.status).toBe(403)
    const wipe = await curl(['-X', 'DELETE', '-H', 'Origin: http://evil.com', '-H', 'Sec-Fetch-Site: cross-site', `${web}/api/requests/http`])
    expect(wipe.status).toBe(403)
    const notJson = await curl(['-X', 'POST', '-H', 'Content-Type: text/plain', '--data-binary', JSON.stringify({ id }), `${web}/api/requests/http`])
    expect(notJson.status).toBe(415)
    expect(JSON.parse(notJson.body)).toMatchObject({ error: { code: 'ERR_WARREN_6012' } })
    await Bun.sleep(200)
    expect(upstream.seen.length).toBe(seen)
    // Not a clock or a counter: an attacking page cannot guess it either.
    expect(id).toMatch(/^ex_[0-9a-f]{32}$/)

    // The inspector's own page (same origin), and a script with no Origin, both replay.
    const own = await curl(['-X', 'POST', '-H', `Origin: ${web}`, '-H', 'Sec-Fetch-Site: same-origin', '-H', 'Content-Type: application/json', '--data-binary', JSON.stringify({ id }), `${web}/api/requests/http`])
    expect(own.status).toBe(201)
    expect(JSON.parse(own.body)).toMatchObject({ replay_of: id, response: { status_code: 200 } })
    const script = await curl(['-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', JSON.stringify({ id }), `${web}/api/requests/http`])
    expect(script.status).toBe(201)
    expect(upstream.seen.length).toBe(seen + 2)
    expect(upstream.seen.at(-1)).toMatchObject({ method: 'POST', path: '/transfer' })
  })
})

describe('a YAML alias bomb in policies/', () => {
  test('is logged as file:line:col with ERR_WARREN_1007, and every endpoint keeps loading and serving', async () => {
    expect((await viaEdge('good.warren.localhost', '/')).body).toBe('good')
    edge.writePolicy('bomb.yml', ALIAS_BOMB)
    const line = await edge.waitForLog(/bomb\.yml:\d+:\d+: /, 10_000)
    expect(JSON.parse(line)).toMatchObject({ level: 'error', code: 'ERR_WARREN_1007', msg: expect.stringMatching(/^bomb\.yml:9:8: YAML aliases expand too far: \*h alone copies \d+ values; refused as an alias bomb \[ERR_WARREN_1007\]$/) })
    expect(edge.logs()).not.toContain('ReferenceError')
    expect((await viaEdge('good.warren.localhost', '/')).body).toBe('good')

    // A good file turned into a bomb keeps its last good endpoint; a file added later still loads.
    edge.writePolicy('good.yml', ALIAS_BOMB)
    await edge.waitForLog(/good\.yml:9:8: YAML aliases expand too far/, 10_000)
    edge.writePolicy('later.yml', `url: http://later.warren.localhost\n${respond('later')}`)
    expect(await eventually(async () => (await viaEdge('later.warren.localhost', '/')).body === 'later', 10_000, 100)).toBe(true)
    expect((await viaEdge('good.warren.localhost', '/')).body).toBe('good')
    expect(edge.proc.exitCode).toBeNull()
  })

  test('in an agent --traffic-policy-file or an SDK traffic policy: refused with the position and ERR_WARREN_1007', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-holes-bomb-'))
    try {
      writeFileSync(join(dir, 'policy.yml'), ALIAS_BOMB)
      const a = agent(['http', String(upstream.port), '--traffic-policy-file', join(dir, 'policy.yml'), ...edgeFlags(edge, 'alice-token')])
      expect(await Promise.race([a.proc.exited, Bun.sleep(15_000).then(() => 'still running')])).toBe(1)
      expect(a.logs()).toContain(`${join(dir, 'policy.yml')}:9:8: YAML aliases expand too far`)
      expect(a.logs()).toContain('ERR_WARREN_1007')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    const s = await new ngrok.SessionBuilder().authtoken('alice-token').serverAddr(`127.0.0.1:${edge.agentPort}`).rootCas(edge.caPath).connect()
    try {
      const error = await s.httpEndpoint().trafficPolicy(ALIAS_BOMB).listenAndForward(`http://127.0.0.1:${upstream.port}`).then(() => undefined, (e: Error) => e)
      expect(error?.message).toContain('9:8: YAML aliases expand too far')
      expect(error?.message).toContain('ERR_WARREN_1007')
    } finally {
      await s.close()
    }
    expect(edge.proc.exitCode).toBeNull()
  })
})

describe('tcp:// names', () => {
  test('the agent binary: a name of another account is refused with ERR_WARREN_4003, an owned one works', async () => {
    const refused = agent(['tcp', String(echo.port), '--url', `tcp://db.bob.warren.localhost:${tcpPorts[0]}`, ...edgeFlags(edge, 'alice-token')])
    expect(await Promise.race([refused.proc.exited, Bun.sleep(15_000).then(() => 'still running')])).toBe(1)
    expect(refused.logs()).toContain('does not own db.bob.warren.localhost')
    expect(refused.logs()).toContain('ERR_WARREN_4003')
    // Nothing listens there: the connection is refused (or, had a listener been left, echoes nothing).
    expect(await echoRoundTrip(tcpPorts[0]!, 5).then((x) => x.receivedBytes, () => 0)).toBe(0)

    const owned = agent(['tcp', String(echo.port), '--url', `tcp://db.alice.warren.localhost:${tcpPorts[0]}`, ...edgeFlags(edge, 'alice-token')])
    expect(await owned.forwarding()).toEqual([`tcp://db.alice.warren.localhost:${tcpPorts[0]}`])
    const r = await echoRoundTrip(tcpPorts[0]!, 64 * 1024)
    expect(r.received).toBe(r.sent)
    await owned.stop()
  })

  test('the official SDK: a remote address on another domain is refused (ERR_NGROK_320, ERR_WARREN_4003)', async () => {
    const s = await new ngrok.SessionBuilder().authtoken('alice-token').serverAddr(`127.0.0.1:${edge.agentPort}`).rootCas(edge.caPath).connect()
    try {
      let error: (Error & { errorCode?: string }) | undefined
      try {
        await s.tcpEndpoint().remoteAddr(`bank.example.com:${tcpPorts[1]}`).listenAndForward(`tcp://127.0.0.1:${echo.port}`)
      } catch (e) {
        error = e as Error & { errorCode?: string }
      }
      expect(error?.message).toContain('does not own bank.example.com')
      expect(error?.message).toContain('ERR_WARREN_4003')
      expect(error?.message).toContain('ERR_NGROK_320')
      // The shared tcp name stays open to every account.
      const ok = await s.tcpEndpoint().remoteAddr(`tcp.warren.localhost:${tcpPorts[2]}`).listenAndForward(`tcp://127.0.0.1:${echo.port}`)
      expect(ok.url()).toBe(`tcp://tcp.warren.localhost:${tcpPorts[2]}`)
      await ok.close()
    } finally {
      await s.close()
    }
  })
})
