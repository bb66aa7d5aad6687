import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tls from 'node:tls'
import { forward, listen } from '../../src/agent/sdk.ts'
import { edgeFlags, startAgent, type AgentProcess } from './framework/agent.ts'
import { selfSigned } from './framework/certs.ts'
import { curl } from './framework/curl.ts'
import { freePort } from './framework/ports.ts'
import { eventually, hostFetch, startEdge, WARREN_BIN, type Edge } from './framework/process.ts'
import { echoRoundTrip, startEchoServer } from './framework/tcp.ts'
import { startUpstream } from './framework/upstreams.ts'

// The warren agent (compiled binary, second process) against the compiled edge.
const upstream = startUpstream('agent-origin')
const echo = startEchoServer()
const tlsCert = selfSigned(['secure.warren.localhost'])
const tlsBackend = tls.createServer({ cert: tlsCert.cert, key: tlsCert.key }, (s) => s.end('hello from behind the agent\n'))
const files = mkdtempSync(join(tmpdir(), 'warren-agent-files-'))
const blob = new Uint8Array(300_000).map((_, i) => (i * 7) % 256)
let edge: Edge
let tcpPorts: number[]
const agents: AgentProcess[] = []

function agent(args: string[], env?: Record<string, string>): AgentProcess {
  const a = startAgent(args, env ? { env } : {})
  agents.push(a)
  return a
}

/** Edge config: one account owning every name under the base domain (so random URLs can be re-claimed). */
function edgeConfig(ports: number[]): string {
  return `accounts:
  - name: alice
    authtokens: [alice-token]
    domains: ["*.warren.localhost"]
    tcp_ports: "${ports.join(',')}"
agents:
  reconnect_wait: 3
`
}

beforeAll(async () => {
  await new Promise<void>((r) => tlsBackend.listen(0, '127.0.0.1', r))
  writeFileSync(join(files, 'hello.txt'), 'hello from a file\n')
  writeFileSync(join(files, 'blob.bin'), blob)
  mkdirSync(join(files, 'docs'))
  writeFileSync(join(files, 'docs', 'guide.json'), '{"ok":true}')
  tcpPorts = [await freePort(), await freePort(), await freePort(), await freePort()]
  edge = await startEdge({ config: edgeConfig(tcpPorts) })
  // Until the agent commands are wired in, fail with one clear message rather than many timeouts.
  const probe = Bun.spawnSync([WARREN_BIN, 'http', '--help'])
  if (probe.stdout.toString().includes('unknown command') || probe.stderr.toString().includes('unknown command'))
    throw new Error(`${WARREN_BIN} has no "http" command: add the agent commands to COMMANDS in src/cli/index.ts`)
})
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()))
  await edge?.stop()
  upstream.stop(true)
  echo.stop(true)
  tlsBackend.close()
  rmSync(files, { recursive: true, force: true })
})

const alice = () => edgeFlags(edge, 'alice-token')
const hostOf = (url: string) => new URL(url).hostname

describe('warren tcp / tls', () => {
  test('tcp: prints the URL, relays 2 MB each way intact, stops cleanly', async () => {
    const a = agent(['tcp', String(echo.port), ...alice()])
    const [url] = await a.forwarding()
    expect(url).toMatch(/^tcp:\/\/tcp\.warren\.localhost:\d+$/)
    const port = Number(new URL(url!).port)
    const r = await echoRoundTrip(port, 2 * 1024 * 1024)
    expect(r.receivedBytes).toBe(2 * 1024 * 1024)
    expect(r.received).toBe(r.sent)
    expect(await a.stop()).toBe(0)
    expect(a.logs()).toContain('agent stopped')
    // Unbound at once: the edge stops listening on that port.
    expect(await eventually(() => echoRoundTrip(port, 5).then((x) => x.receivedBytes === 0, () => true), 3000)).toBe(true)
  })

  test('tcp with --upstream-proxy-protocol 1: the upstream sees the client address first', async () => {
    let first = ''
    const server = Bun.listen({
      hostname: '127.0.0.1',
      port: 0,
      socket: {
        data(s, d) {
          first += d.toString()
          s.end()
        },
      },
    })
    try {
      const a = agent(['tcp', String(server.port), '--upstream-proxy-protocol', '1', ...alice()])
      const [url] = await a.forwarding()
      await echoRoundTrip(Number(new URL(url!).port), 3)
      expect(await eventually(async () => first.startsWith('PROXY TCP4 127.0.0.1 '), 3000)).toBe(true)
      await a.stop()
    } finally {
      server.stop(true)
    }
  })

  test('tls: the client TLS passes through the agent to the upstream', async () => {
    const port = (tlsBackend.address() as { port: number }).port
    const a = agent(['tls', String(port), '--url', 'tls://secure.warren.localhost', ...alice()])
    expect(await a.forwarding()).toEqual([`tls://secure.warren.localhost:${edge.httpsPort}`])
    const text = await new Promise<string>((resolve, reject) => {
      const sock = tls.connect({ host: '127.0.0.1', port: edge.httpsPort, servername: 'secure.warren.localhost', ca: tlsCert.cert })
      let out = ''
      sock.on('data', (d) => (out += d))
      sock.on('end', () => resolve(out))
      sock.on('error', reject)
    })
    expect(text).toBe('hello from behind the agent\n')
    await a.stop()
  })

  test('a bad authtoken exits 1 with the ngrok error code', async () => {
    const a = agent(['tcp', String(echo.port), ...edgeFlags(edge, 'wrong-token')])
    expect(await a.proc.exited).toBe(1)
    expect(a.logs()).toContain('ERR_NGROK_107')
    expect(a.logs()).toContain('authtoken you specified is invalid')
  })

  test('an untrusted edge certificate exits 1 and suggests --server-ca', async () => {
    const a = agent(['tcp', String(echo.port), '--server-addr', `127.0.0.1:${edge.agentPort}`, '--authtoken', 'alice-token', '--inspect=false'])
    expect(await a.proc.exited).toBe(1)
    expect(a.logs()).toContain('--server-ca')
  })
})

describe('warren http', () => {
  test('http upstream: requests and bodies reach it with the public Host', async () => {
    const a = agent(['http', String(upstream.port), '--url', 'http://app.warren.localhost', ...alice()])
    expect(await a.forwarding()).toEqual([`http://app.warren.localhost:${edge.httpPort}`])
    const res = await hostFetch(edge, 'app.warren.localhost', '/echo?x=1', { method: 'POST', body: 'x'.repeat(100_000) })
    expect(res.status).toBe(200)
    const body = (await res.json()) as { path: string; method: string; bodyBytes: number; headers: Record<string, string> }
    expect(body).toMatchObject({ path: '/echo?x=1', method: 'POST', bodyBytes: 100_000 })
    expect(body.headers.host).toStartWith('app.warren.localhost')
    // Many requests in a row (keep-alive or not) all arrive.
    const statuses = await Promise.all(Array.from({ length: 20 }, (_, i) => hostFetch(edge, 'app.warren.localhost', `/status/${200 + i}`).then((r) => r.status)))
    expect(statuses).toEqual(Array.from({ length: 20 }, (_, i) => 200 + i))
    await a.stop()
  })

  test('the default scheme is https with a random name, served on the TLS port', async () => {
    const a = agent(['http', String(upstream.port), ...alice()])
    const [url] = await a.forwarding()
    // Printed with the TLS port, so the URL works as printed (*.localhost is loopback).
    expect(url).toMatch(new RegExp(`^https://[0-9a-f]+\\.warren\\.localhost:${edge.httpsPort}$`))
    const host = hostOf(url!)
    const r = await curl(['--cacert', edge.caPath, '--resolve', `${host}:${edge.httpsPort}:127.0.0.1`, `${url}/echo`])
    expect(r.status).toBe(200)
    expect(JSON.parse(r.body)).toMatchObject({ upstream: 'agent-origin', path: '/echo' })
    await a.stop()
  })

  test('websockets work through the agent', async () => {
    const a = agent(['http', String(upstream.port), '--url', 'http://ws.warren.localhost', ...alice()])
    await a.forwarding()
    const ws = new WebSocket(`ws://127.0.0.1:${edge.httpPort}/socket`, { headers: { host: 'ws.warren.localhost' } } as unknown as string[])
    ws.binaryType = 'arraybuffer'
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve()
      ws.onerror = () => reject(new Error('websocket failed to open'))
    })
    const next = () => new Promise<MessageEvent>((r) => ws.addEventListener('message', r, { once: true }))
    ws.send('hello')
    expect((await next()).data).toBe('hello')
    const bytes = new Uint8Array(100_000).map((_, i) => i % 251)
    ws.send(bytes)
    expect(Bun.hash(new Uint8Array((await next()).data as ArrayBuffer))).toBe(Bun.hash(bytes))
    ws.close(1000)
    await a.stop()
  })

  test('file:// serves a directory: listing, content types, a range request', async () => {
    const a = agent(['http', `file://${files}`, '--url', 'http://files.warren.localhost', ...alice()])
    expect(a.logs() + (await a.forwarding()).join()).toContain('files.warren.localhost')
    expect(a.logs()).toContain(`-> file://${files}`)
    const listing = await hostFetch(edge, 'files.warren.localhost', '/')
    expect(listing.status).toBe(200)
    const html = await listing.text()
    expect(html).toContain('href="docs/"')
    expect(html).toContain('href="hello.txt"')
    const json = await hostFetch(edge, 'files.warren.localhost', '/docs/guide.json')
    expect(json.headers.get('content-type')).toStartWith('application/json')
    expect(await json.json()).toEqual({ ok: true })
    const part = await hostFetch(edge, 'files.warren.localhost', '/blob.bin', { headers: { range: 'bytes=1000-1999' } })
    expect(part.status).toBe(206)
    expect(part.headers.get('content-range')).toBe(`bytes 1000-1999/${blob.length}`)
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(blob.subarray(1000, 2000))
    const whole = await hostFetch(edge, 'files.warren.localhost', '/blob.bin')
    expect(Bun.hash(new Uint8Array(await whole.arrayBuffer()))).toBe(Bun.hash(blob))
    expect((await hostFetch(edge, 'files.warren.localhost', '/../../etc/passwd')).status).toBe(404)
    await a.stop()
  })

  test('upstream down: a 502 page with the error code, quickly, never a hang', async () => {
    const dead = await freePort()
    const a = agent(['http', String(dead), '--url', 'http://down.warren.localhost', ...alice()])
    await a.forwarding()
    const started = Date.now()
    const res = await hostFetch(edge, 'down.warren.localhost', '/')
    expect(res.status).toBe(502)
    expect(res.headers.get('warren-error-code')).toBe('ERR_WARREN_8012')
    expect(await res.text()).toContain('ERR_WARREN_8012')
    expect(Date.now() - started).toBeLessThan(2000)
    const json = await hostFetch(edge, 'down.warren.localhost', '/', { headers: { accept: 'application/json' } })
    expect(await json.json()).toMatchObject({ error: { code: 'ERR_WARREN_8012' } })
    await a.stop()
  })

  test('legacy --basic-auth and --request-header-add are enforced by the edge', async () => {
    const a = agent(['http', String(upstream.port), '--url', 'http://guarded.warren.localhost', '--basic-auth', 'alice:wonderland1', '--request-header-add', 'x-from-agent: yes', ...alice()])
    await a.forwarding()
    expect((await hostFetch(edge, 'guarded.warren.localhost', '/echo')).status).toBe(401)
    const ok = await hostFetch(edge, 'guarded.warren.localhost', '/echo', { headers: { authorization: `Basic ${btoa('alice:wonderland1')}` } })
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as { headers: Record<string, string> }).headers['x-from-agent']).toBe('yes')
    await a.stop()
  })

  test('--traffic-policy-file is enforced by the edge', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-agent-policy-'))
    writeFileSync(
      join(dir, 'policy.yml'),
      `on_http_request:
  - expressions: ["req.url.path.startsWith('/private')"]
    actions:
      - type: deny
        config: {status_code: 418}
  - actions:
      - type: add-headers
        config: {headers: {x-policy: applied}}
`,
    )
    const a = agent(['http', String(upstream.port), '--url', 'http://policy.warren.localhost', '--traffic-policy-file', join(dir, 'policy.yml'), ...alice()])
    await a.forwarding()
    expect((await hostFetch(edge, 'policy.warren.localhost', '/private/x')).status).toBe(418)
    const ok = await hostFetch(edge, 'policy.warren.localhost', '/echo')
    expect(((await ok.json()) as { headers: Record<string, string> }).headers['x-policy']).toBe('applied')
    await a.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('SIGTERM lets a request in flight finish, then the agent exits 0', async () => {
    const slow = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: async () => (await Bun.sleep(800), new Response('finally')) })
    try {
      const a = agent(['http', String(slow.port), '--url', 'http://slow.warren.localhost', ...alice()])
      await a.forwarding()
      const pending = hostFetch(edge, 'slow.warren.localhost', '/')
      await Bun.sleep(200)
      const exited = a.stop()
      const res = await pending
      expect(res.status).toBe(200)
      expect(await res.text()).toBe('finally')
      expect(await exited).toBe(0)
    } finally {
      slow.stop(true)
    }
  })

  test('an invalid policy is refused at start with the edge message', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-agent-policy-'))
    writeFileSync(join(dir, 'bad.yml'), 'on_http_request:\n  - actions: [{type: nope}]\n')
    const a = agent(['http', String(upstream.port), '--traffic-policy-file', join(dir, 'bad.yml'), ...alice()])
    expect(await a.proc.exited).toBe(1)
    expect(a.logs()).toContain('unknown action type "nope"')
    rmSync(dir, { recursive: true, force: true })
  })
})

describe('warren start and warren config', () => {
  test('config add-authtoken/add-server write the default file; start NAME… runs several endpoints of merged files', async () => {
    const home = mkdtempSync(join(tmpdir(), 'warren-agent-cfg-'))
    const env = { HOME: home, XDG_CONFIG_HOME: join(home, '.config') }
    const cfgPath = join(home, '.config', 'warren', 'agent.yml')
    const run = (args: string[]) => Bun.spawnSync([WARREN_BIN, ...args], { env: { ...process.env, ...env } })
    expect(run(['config', 'add-authtoken', 'alice-token']).stdout.toString()).toContain(cfgPath)
    expect(run(['config', 'add-server', `127.0.0.1:${edge.agentPort}`, '--server-ca', edge.caPath]).exitCode).toBe(0)
    const base = readFileSync(cfgPath, 'utf8')
    expect(base).toContain('authtoken: alice-token')
    // A second file adds the endpoints: several --config files merge.
    const endpointsFile = join(home, 'endpoints.yml')
    writeFileSync(
      endpointsFile,
      `version: 3
agent:
  log_format: json
endpoints:
  - name: web
    url: http://start-web.warren.localhost
    upstream: {url: ${upstream.port}}
  - name: files
    url: http://start-files.warren.localhost
    upstream: {url: "file://${files}"}
  - name: echo
    url: "tcp://"
    upstream: {url: "127.0.0.1:${echo.port}"}
  - name: unused
    url: http://unused.warren.localhost
    upstream: {url: 1}
`,
    )
    const check = run(['config', 'check', '--config', cfgPath, '--config', endpointsFile])
    expect(check.stdout.toString()).toContain('Valid configuration files')
    const a = agent(['start', 'web', 'files', 'echo', '--config', cfgPath, '--config', endpointsFile, '--web-addr', 'false'], env)
    const urls = await a.forwarding(3)
    expect(urls.slice(0, 2)).toEqual([`http://start-web.warren.localhost:${edge.httpPort}`, `http://start-files.warren.localhost:${edge.httpPort}`])
    expect(urls[2]).toMatch(/^tcp:\/\//)
    expect((await hostFetch(edge, 'start-web.warren.localhost', '/echo')).status).toBe(200)
    expect(await (await hostFetch(edge, 'start-files.warren.localhost', '/hello.txt')).text()).toBe('hello from a file\n')
    expect((await echoRoundTrip(Number(new URL(urls[2]!).port), 1000)).receivedBytes).toBe(1000)
    expect(a.logs()).not.toContain('unused.warren.localhost')
    expect(await a.stop()).toBe(0)
    rmSync(home, { recursive: true, force: true })
  })

  test('config check reports a bad policy with its code', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-agent-cfg-'))
    writeFileSync(join(dir, 'a.yml'), `version: 3\nendpoints:\n  - name: x\n    traffic_policy: {on_http_request: [{actions: [{type: nope}]}]}\n    upstream: {url: 80}\n`)
    const r = Bun.spawnSync([WARREN_BIN, 'config', 'check', '--config', join(dir, 'a.yml')])
    expect(r.exitCode).toBe(1)
    expect(r.stderr.toString()).toContain('endpoint "x"')
    expect(r.stderr.toString()).toContain('nope')
    rmSync(dir, { recursive: true, force: true })
  })
})

describe('the local inspector', () => {
  test('captures requests live, shows their detail, replays them to the upstream', async () => {
    const port = await freePort()
    const web = `http://127.0.0.1:${port}`
    const a = agent(['http', String(upstream.port), '--url', 'http://inspect.warren.localhost', ...edgeFlags(edge, 'alice-token', { webAddr: `127.0.0.1:${port}` })])
    await a.forwarding()
    await a.waitForLog(/Web Interface/)
    expect((await fetch(`${web}/api/requests/http`)).status).toBe(200)
    await hostFetch(edge, 'inspect.warren.localhost', '/echo?from=client', { method: 'POST', body: '{"hello":"inspector"}', headers: { 'content-type': 'application/json' } })
    type Listed = { id: string; request: { method: string; uri: string }; response: { status_code: number } | null; duration_ms: number | null }
    let listed: Listed[] = []
    expect(
      await eventually(async () => {
        listed = ((await (await fetch(`${web}/api/requests/http`)).json()) as { requests: Listed[] }).requests
        return listed.length === 1 && listed[0]!.duration_ms !== null
      }, 3000),
    ).toBe(true)
    expect(listed[0]).toMatchObject({ request: { method: 'POST', uri: '/echo?from=client' }, response: { status_code: 200 } })
    const detail = (await (await fetch(`${web}/api/requests/http/${listed[0]!.id}`)).json()) as { request: { body: { base64: string } }; response: { body: { base64: string } } }
    expect(Buffer.from(detail.request.body.base64, 'base64').toString()).toBe('{"hello":"inspector"}')
    expect(JSON.parse(Buffer.from(detail.response.body.base64, 'base64').toString())).toMatchObject({ path: '/echo?from=client', bodyBytes: 21 })

    const before = upstream.seen.length
    const replayed = await fetch(`${web}/api/requests/http`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: listed[0]!.id, uri: '/echo?from=replay' }) })
    expect(replayed.status).toBe(201)
    expect(upstream.seen.length).toBe(before + 1)
    expect(upstream.seen.at(-1)).toMatchObject({ method: 'POST', path: '/echo?from=replay', bodyBytes: 21 })
    expect(upstream.seen.at(-1)!.headers.host).toStartWith('inspect.warren.localhost')

    const endpoints = (await (await fetch(`${web}/api/endpoints`)).json()) as { endpoints: { url: string }[] }
    expect(endpoints.endpoints.map((e) => e.url)).toEqual([`http://inspect.warren.localhost:${edge.httpPort}`])
    expect(await (await fetch(`${web}/`)).text()).toContain('warren inspector')
    expect((await fetch(`${web}/api/status`, { headers: { host: 'attacker.example.com' } })).status).toBe(403)
    await a.stop()
  })
})

describe('the terminal dashboard', () => {
  test.skipIf(!Bun.which('tmux'))('under tmux: session status, the Forwarding line, counters and requests', async () => {
    // A private tmux server (its own socket), so nothing else on the machine is touched.
    const socket = `warren-e2e-${process.pid}`
    const tmux = (...args: string[]) => Bun.spawnSync(['tmux', '-L', socket, ...args])
    const home = mkdtempSync(join(tmpdir(), 'warren-agent-tui-'))
    const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`
    const command = [WARREN_BIN, 'http', String(upstream.port), '--url', 'http://tui.warren.localhost', '--server-addr', `127.0.0.1:${edge.agentPort}`, '--server-ca', edge.caPath, '--authtoken', 'alice-token', '--inspect=false']
    const screen = () => tmux('capture-pane', '-p', '-t', 'agent').stdout.toString()
    try {
      const started = tmux('new-session', '-d', '-s', 'agent', '-x', '120', '-y', '40', `env HOME=${quote(home)} XDG_CONFIG_HOME=${quote(join(home, '.config'))} ${command.map(quote).join(' ')}`)
      expect(started.exitCode).toBe(0)
      expect(await eventually(async () => screen().includes(`Forwarding                    http://tui.warren.localhost:${edge.httpPort} -> http://localhost:`), 5000, 100)).toBe(true)
      expect(screen()).toContain('Session Status                online')
      expect(screen()).toContain('Account                       alice')
      for (let i = 0; i < 3; i++) expect((await hostFetch(edge, 'tui.warren.localhost', `/echo/${i}`)).status).toBe(200)
      expect(await eventually(async () => /GET \/echo\/2\s+200 OK/.test(screen()), 3000, 100)).toBe(true)
      expect(screen()).toMatch(/Connections\s+ttl\s+opn\s+rt1\s+rt5\s+p50\s+p90/)
      expect(screen()).not.toContain('"level"')
      tmux('send-keys', '-t', 'agent', 'C-c')
      expect(await eventually(async () => tmux('has-session', '-t', 'agent').exitCode !== 0, 5000, 100)).toBe(true)
    } finally {
      tmux('kill-server')
      rmSync(home, { recursive: true, force: true })
    }
  })
})

describe('the TypeScript SDK', () => {
  test('forward() opens an endpoint in-process and close() removes it', async () => {
    const listener = await forward({ addr: upstream.port!, authtoken: 'alice-token', serverAddr: `127.0.0.1:${edge.agentPort}`, serverCa: edge.caPath, url: 'http://sdk.warren.localhost' })
    try {
      expect(listener.url()).toBe(`http://sdk.warren.localhost:${edge.httpPort}`)
      const res = await hostFetch(edge, 'sdk.warren.localhost', '/echo')
      expect(((await res.json()) as { upstream: string }).upstream).toBe('agent-origin')
    } finally {
      await listener.close()
    }
    expect(await eventually(async () => (await hostFetch(edge, 'sdk.warren.localhost', '/echo')).status !== 200, 3000)).toBe(true)
  })

  test('listen() serves a fetch handler through an endpoint, no local port needed', async () => {
    const listener = await listen((req) => new Response(`handled ${new URL(req.url).pathname}`), {
      authtoken: 'alice-token',
      serverAddr: `127.0.0.1:${edge.agentPort}`,
      serverCa: edge.caPath,
      url: 'http://listen.warren.localhost',
    })
    try {
      expect(await (await hostFetch(edge, 'listen.warren.localhost', '/in-process')).text()).toBe('handled /in-process')
    } finally {
      await listener.close()
    }
  })

  test('forward() rejects a bad authtoken', async () => {
    const error = await forward({ addr: 1, authtoken: 'nope', serverAddr: `127.0.0.1:${edge.agentPort}`, serverCa: edge.caPath }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'ERR_NGROK_107' })
  })
})

describe('reconnect', () => {
  test('after the edge restarts the agent is back, with the same URLs, within 5 s', async () => {
    const ports = { http: await freePort(), https: await freePort(), api: await freePort(), agent: await freePort(), tcp: await freePort() }
    const certs = mkdtempSync(join(tmpdir(), 'warren-agent-certs-'))
    const args = ['--http', `127.0.0.1:${ports.http}`, '--https', `127.0.0.1:${ports.https}`, '--api', `127.0.0.1:${ports.api}`, '--agent', `127.0.0.1:${ports.agent}`, '--certs', certs]
    let restartable = await startEdge({ config: edgeConfig([ports.tcp]), args })
    const flags = ['--server-addr', `127.0.0.1:${ports.agent}`, '--server-ca', join(certs, 'dev-ca.pem'), '--authtoken', 'alice-token', '--log-format', 'json', '--inspect=false']
    const fetchVia = (host: string) =>
      fetch(`http://127.0.0.1:${ports.http}/echo`, { headers: { host } }).then(
        (r) => r.status,
        () => 0,
      )
    try {
      const named = agent(['http', String(upstream.port), '--url', 'http://stay.warren.localhost', ...flags])
      const random = agent(['http', String(upstream.port), '--scheme', 'http', ...flags])
      const tcp = agent(['tcp', String(echo.port), ...flags])
      await named.forwarding()
      const [randomUrl] = await random.forwarding()
      const [tcpUrl] = await tcp.forwarding()
      expect(await fetchVia('stay.warren.localhost')).toBe(200)
      expect(await fetchVia(hostOf(randomUrl!))).toBe(200)

      await restartable.stop()
      expect(await fetchVia('stay.warren.localhost')).toBe(0)
      restartable = await startEdge({ config: edgeConfig([ports.tcp]), args })
      const back = Date.now()
      expect(await eventually(async () => (await fetchVia('stay.warren.localhost')) === 200, 5000, 50)).toBe(true)
      expect(await eventually(async () => (await fetchVia(hostOf(randomUrl!))) === 200, 5000 - (Date.now() - back), 50)).toBe(true)
      expect(await eventually(async () => (await echoRoundTrip(Number(new URL(tcpUrl!).port), 10).catch(() => ({ receivedBytes: 0 }))).receivedBytes === 10, 5000, 50)).toBe(true)
      expect(Date.now() - back).toBeLessThan(5000)
      // No new Forwarding lines: every URL stayed the same.
      for (const a of [named, random, tcp]) expect([...a.logs().matchAll(/Forwarding /g)]).toHaveLength(1)
      expect(named.logs()).toContain('session lost; reconnecting')
    } finally {
      await restartable.stop()
      rmSync(certs, { recursive: true, force: true })
    }
  })
})
