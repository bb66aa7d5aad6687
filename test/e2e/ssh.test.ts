import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tls from 'node:tls'
import { selfSigned } from './framework/certs.ts'
import { curl } from './framework/curl.ts'
import { freePort } from './framework/ports.ts'
import { eventually, hostFetch, startEdge, type Edge } from './framework/process.ts'
import { fingerprint, makeKey, sshUnavailable, startSsh, type SshClient } from './framework/ssh.ts'
import { echoRoundTrip, startEchoServer } from './framework/tcp.ts'
import { startUpstream } from './framework/upstreams.ts'

// OpenSSH's ssh against the compiled edge's SSH front door: no agent on the service's side.
const unavailable = sshUnavailable()
if (unavailable) console.warn(`test/e2e/ssh.test.ts skipped: ${unavailable}`)

const TOKEN = 'ssh-e2e-token'
const API_KEY = 'ssh-e2e-api-key'
const upstream = startUpstream('ssh-origin')
const upstream2 = startUpstream('ssh-origin-2')
const echo = startEchoServer()
const tlsCert = selfSigned(['secure.warren.localhost'])
const tlsBackend = tls.createServer({ cert: tlsCert.cert, key: tlsCert.key }, (s) => s.end('hello over ssh tls\n')).listen(0, '127.0.0.1')
const dir = mkdtempSync(join(tmpdir(), 'warren-ssh-'))
const clients: SshClient[] = []
let edge: Edge
let sshPort: number
let tcpPort: number
let key: { path: string; publicKey: string }
let byFingerprint: { path: string; publicKey: string }
let stranger: { path: string; publicKey: string }

function ssh(options: { forward: string | string[]; command: string[]; key?: string; password?: string; sshArgs?: string[] }): SshClient {
  const c = startSsh({ port: sshPort, dir, ...options, ...(options.password === undefined && !options.key ? { key: key.path } : {}) })
  clients.push(c)
  return c
}

/** Requests `url` (http:// or https://) at the edge's matching port, with a Host header for the name. */
function edgeUrl(url: string, path = '/'): { target: string; host: string } {
  const u = new URL(url)
  const port = u.protocol === 'https:' ? edge.httpsPort : edge.httpPort
  return { target: `${u.protocol}//${u.hostname}:${port}${path}`, host: u.hostname }
}

function viaCurl(url: string, path = '/', extra: string[] = []): ReturnType<typeof curl> {
  const { target, host } = edgeUrl(url, path)
  const port = new URL(target).port
  return curl(['--cacert', edge.caPath, '--resolve', `${host}:${port}:127.0.0.1`, ...extra, target])
}

beforeAll(async () => {
  if (unavailable) return
  key = makeKey(dir, 'id_alice')
  byFingerprint = makeKey(dir, 'id_alice_fp')
  stranger = makeKey(dir, 'id_stranger')
  sshPort = await freePort()
  tcpPort = await freePort()
  edge = await startEdge({
    args: ['--ssh', `127.0.0.1:${sshPort}`],
    config: `api_keys: [${API_KEY}]
accounts:
  - name: alice
    authtokens: [${TOKEN}]
    domains: ["*.warren.localhost", "app.example.com"]
    tcp_ports: "${tcpPort}"
    ssh_keys:
      - "${key.publicKey}"
      - "${fingerprint(byFingerprint.path).replace(/^SHA256/, 'sha256')}"
`,
  })
  await edge.waitForLog(/ssh front door listening/)
})

afterAll(async () => {
  await Promise.all(clients.map((c) => c.stop()))
  await edge?.stop()
  upstream.stop(true)
  upstream2.stop(true)
  echo.stop(true)
  tlsBackend.close()
  rmSync(dir, { recursive: true, force: true })
})

describe.skipIf(!!unavailable)('SSH front door (OpenSSH ssh -R against the compiled edge)', () => {
  test('the host key is created in certs/ssh and its fingerprint logged', async () => {
    const line = await edge.waitForLog(/ssh front door listening/)
    expect(JSON.parse(line).host_key).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/)
    expect(await Bun.file(join(edge.dir, 'certs', 'ssh', 'host_ed25519_key')).exists()).toBe(true)
  })

  test('http with a random name (-R 0:…): https URL, requests reach the upstream, one console line per request', async () => {
    const c = ssh({ forward: `0:127.0.0.1:${upstream.port}`, command: ['http'] })
    const url = await c.url()
    expect(url).toMatch(new RegExp(`^https://[0-9a-f]{12}\\.warren\\.localhost:${edge.httpsPort}$`))
    const r = await viaCurl(url, '/echo?x=1')
    expect(r.status).toBe(200)
    expect(JSON.parse(r.body)).toMatchObject({ upstream: 'ssh-origin', path: '/echo?x=1' })
    expect(await c.waitForOutput(/GET\s+\/echo\?x=1\s+200 OK/)).toContain('UTC')
    await c.stop()
  })

  test('http with an owned domain from the bind address (-R app.example.com:80:…)', async () => {
    const c = ssh({ forward: `app.example.com:80:127.0.0.1:${upstream.port}`, command: ['http'] })
    expect(await c.url()).toBe(`http://app.example.com:${edge.httpPort}`)
    const res = await hostFetch(edge, 'app.example.com', '/echo')
    expect(res.status).toBe(200)
    expect(((await res.json()) as { headers: Record<string, string> }).headers.host).toBe('app.example.com')
    await c.stop()
  })

  test('--basic-auth and --request-header-add (split by ssh as ngrok documents it) are enforced at the edge', async () => {
    const c = ssh({ forward: `80:127.0.0.1:${upstream.port}`, command: ['http', '--basic-auth', 'user:password123', "--request-header-add='x-added: from ssh'"] })
    const url = await c.url()
    const host = new URL(url).hostname
    const denied = await hostFetch(edge, host, '/echo')
    expect(denied.status).toBe(401)
    expect(denied.headers.get('warren-error-code')).toBe('ERR_WARREN_2103')
    const ok = await hostFetch(edge, host, '/echo', { headers: { authorization: `Basic ${btoa('user:password123')}` } })
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as { headers: Record<string, string> }).headers['x-added']).toBe('from ssh')
    await c.stop()
  })

  test('--verify-webhook with its secret is enforced at the edge', async () => {
    const c = ssh({ forward: `80:127.0.0.1:${upstream.port}`, command: ['http', '--verify-webhook', 'github', '--verify-webhook-secret', 'ssh-hook-secret'] })
    const host = new URL(await c.url()).hostname
    const body = '{"hook":1}'
    const sign = (key: string) => 'sha256=' + new Bun.CryptoHasher('sha256', key).update(body).digest('hex')
    const ok = await hostFetch(edge, host, '/echo', { method: 'POST', body, headers: { 'x-hub-signature-256': sign('ssh-hook-secret') } })
    expect(ok.status).toBe(200)
    const bad = await hostFetch(edge, host, '/echo', { method: 'POST', body, headers: { 'x-hub-signature-256': sign('guess') } })
    expect(bad.status).toBe(403)
    expect(bad.headers.get('warren-error-code')).toBe('ERR_WARREN_2130')
    await c.stop()
  })

  test('tcp (-R 0:…) gets the account port; 50 MB each way through it is byte-exact', async () => {
    const c = ssh({ forward: `0:127.0.0.1:${echo.port}`, command: ['tcp'] })
    expect(await c.url()).toBe(`tcp://tcp.warren.localhost:${tcpPort}`)
    await eventually(async () => (await echoRoundTrip(tcpPort, 5)).receivedBytes === 5, 5000)
    const r = await echoRoundTrip(tcpPort, 50 * 1024 * 1024)
    expect(r.receivedBytes).toBe(50 * 1024 * 1024)
    expect(r.received).toBe(r.sent)
    // Each closed connection gets a console line with its byte counts.
    expect(await c.waitForOutput(/UTC {2}tcp 127\.0\.0\.1:\d+ closed \(52428800 B in, 52428800 B out\)/)).toBeTruthy()
    await c.stop()
  }, 120_000)

  test('tcp with a client that stops reading for 2 s: 16 MB arrive byte-exact once it reads again', async () => {
    const c = ssh({ forward: `0:127.0.0.1:${echo.port}`, command: ['tcp'] })
    await c.url()
    await eventually(async () => (await echoRoundTrip(tcpPort, 5)).receivedBytes === 5, 5000)
    const total = 16 * 1024 * 1024
    const block = randomBytes(64 * 1024)
    const sent = createHash('sha256')
    const received = createHash('sha256')
    let receivedBytes = 0
    const socket = connect(tcpPort, '127.0.0.1')
    // Not read at first: the edge's writes to this client back up, so it pauses the channel and the
    // ssh client runs out of window with data on its way.
    socket.pause()
    const done = new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        received.update(chunk)
        receivedBytes += chunk.length
        if (receivedBytes >= total) resolve()
      })
      socket.on('error', reject)
      socket.on('close', () => resolve())
    })
    for (let written = 0; written < total; written += block.length) {
      sent.update(block)
      if (!socket.write(block)) await Promise.race([new Promise((r) => socket.once('drain', r)), Bun.sleep(50)])
    }
    await Bun.sleep(2000)
    socket.resume()
    await done
    socket.destroy()
    expect(receivedBytes).toBe(total)
    expect(received.digest('hex')).toBe(sent.digest('hex'))
    await c.stop()
  }, 60_000)

  test('100 concurrent requests through one SSH session', async () => {
    const c = ssh({ forward: `80:127.0.0.1:${upstream.port}`, command: ['http'] })
    const host = new URL(await c.url()).hostname
    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const res = await hostFetch(edge, host, `/echo?n=${i}`)
        return { status: res.status, body: (await res.json()) as { path: string } }
      }),
    )
    expect(results.filter((r) => r.status === 200).length).toBe(100)
    expect(new Set(results.map((r) => r.body.path)).size).toBe(100)
    await c.stop()
  }, 60_000)

  test('a domain the account does not own is refused with its code, and ssh exits', async () => {
    const c = ssh({ forward: `other.example.org:80:127.0.0.1:${upstream.port}`, command: ['http'] })
    const code = await c.proc.exited
    expect(code).not.toBe(0)
    expect(c.stderr()).toContain('ERR_WARREN_4003')
    expect(c.stderr()).toContain('other.example.org')
    expect((await hostFetch(edge, 'other.example.org')).status).toBe(404)
  })

  test('what only the agent can do is refused clearly: https upstreams, file serving, a wrong port', async () => {
    for (const [forward, command, code, text] of [
      [`0:127.0.0.1:${upstream.port}`, ['http', 'https://localhost:8443'], 'ERR_WARREN_4033', 'https upstreams'],
      [`0:127.0.0.1:${upstream.port}`, ['http', 'file:///var/log'], 'ERR_WARREN_4033', 'serving files'],
      [`8080:127.0.0.1:${upstream.port}`, ['http'], 'ERR_WARREN_4034', 'port 0, 80'],
      [`0:127.0.0.1:${upstream.port}`, ['ftp'], 'ERR_WARREN_4032', 'unknown command'],
    ] as const) {
      const c = ssh({ forward, command: [...command] })
      expect(await c.proc.exited).not.toBe(0)
      expect(c.stderr()).toContain(code)
      expect(c.stderr()).toContain(text)
    }
  })

  test('a key no account lists is refused (and logged with ERR_WARREN_4031)', async () => {
    const c = ssh({ forward: `0:127.0.0.1:${upstream.port}`, command: ['http'], key: stranger.path })
    expect(await c.proc.exited).toBe(255)
    expect(c.stderr()).toContain('Permission denied')
    expect(c.stdout()).not.toContain('Forwarding')
    await edge.waitForLog(/ssh login refused.*ERR_WARREN_4031.*publickey/)
  })

  test('a key given as a sha256: fingerprint logs in', async () => {
    const c = ssh({ forward: `80:127.0.0.1:${upstream.port}`, command: ['http'], key: byFingerprint.path })
    expect(await c.url()).toMatch(/^http:\/\//)
    await c.stop()
  })

  test('OpenSSH negotiates AES-GCM by default; a client offering only AES-CTR is told no cipher matched', async () => {
    const c = ssh({ forward: `80:127.0.0.1:${upstream.port}`, command: ['http'], sshArgs: ['-v'] })
    const host = new URL(await c.url()).hostname
    expect((await hostFetch(edge, host, '/echo')).status).toBe(200)
    expect(c.stderr()).toMatch(/kex: server->client cipher: aes128-gcm@openssh\.com/)
    expect(c.stderr()).toMatch(/kex: client->server cipher: aes128-gcm@openssh\.com/)
    await c.stop()
    const ctr = ssh({ forward: `0:127.0.0.1:${upstream.port}`, command: ['http'], sshArgs: ['-v', '-c', 'aes128-ctr'] })
    expect(await ctr.proc.exited).toBe(255)
    expect(ctr.stderr()).toMatch(/no matching cipher found\. Their offer: aes128-gcm@openssh\.com,aes256-gcm@openssh\.com/)
    expect(ctr.stdout()).not.toContain('Forwarding')
  })

  test('the authtoken works as the password; a wrong one is refused', async () => {
    const bad = ssh({ forward: `0:127.0.0.1:${upstream.port}`, command: ['http'], password: 'not-the-token' })
    expect(await bad.proc.exited).toBe(255)
    expect(bad.stderr()).toContain('Permission denied')
    await edge.waitForLog(/ssh login refused.*ERR_WARREN_4031.*password/)
    const good = ssh({ forward: `80:127.0.0.1:${upstream.port}`, command: ['http'], password: TOKEN })
    const host = new URL(await good.url()).hostname
    expect((await hostFetch(edge, host, '/echo')).status).toBe(200)
    await good.stop()
  })

  test('the endpoint and session are listed by the API while connected, and removed when the session ends', async () => {
    const c = ssh({ forward: `80:127.0.0.1:${upstream.port}`, command: ['http', '--description', 'via-ssh'] })
    const url = await c.url()
    const host = new URL(url).hostname
    const auth = { authorization: `Bearer ${API_KEY}` }
    const endpoints = (await (await fetch(`http://127.0.0.1:${edge.apiPort}/endpoints`, { headers: auth })).json()) as { endpoints: { url: string; type: string; description?: string }[] }
    expect(endpoints.endpoints.find((e) => e.url === url)).toMatchObject({ type: 'agent', description: 'via-ssh' })
    const sessions = (await (await fetch(`http://127.0.0.1:${edge.apiPort}/tunnel-sessions`, { headers: auth })).json()) as {
      tunnel_sessions: { id: string; account: string; client_info: { ClientType?: string }; endpoints: { url: string }[] }[]
    }
    const mine = sessions.tunnel_sessions.find((s) => s.endpoints.some((e) => e.url === url))
    expect(mine).toMatchObject({ account: 'alice', client_info: { ClientType: 'ssh' } })
    expect(mine!.id).toMatch(/^ssh_/)
    expect((await hostFetch(edge, host, '/echo')).status).toBe(200)

    await c.stop()
    expect(await eventually(async () => (await hostFetch(edge, host, '/echo')).status === 404, 5000)).toBe(true)
    const gone = await hostFetch(edge, host, '/echo')
    expect(gone.headers.get('warren-error-code')).toBe('ERR_WARREN_3200')
  })

  test('tls passthrough named by the bind address: the TLS of the client reaches the upstream untouched', async () => {
    const c = ssh({ forward: `secure.warren.localhost:443:127.0.0.1:${(tlsBackend.address() as { port: number }).port}`, command: ['tls'] })
    expect(await c.url()).toBe(`tls://secure.warren.localhost:${edge.httpsPort}`)
    const text = await new Promise<string>((resolve, reject) => {
      let got = ''
      const s = tls.connect({ host: '127.0.0.1', port: edge.httpsPort, servername: 'secure.warren.localhost', ca: tlsCert.cert }, () => {})
      s.on('data', (d) => (got += d))
      s.on('end', () => resolve(got))
      s.on('error', reject)
    })
    expect(text).toBe('hello over ssh tls\n')
    await c.stop()
  })

  test('--traffic-policy-file takes the policy text; it runs before the upstream', async () => {
    // Quoted for the remote side: ssh joins its arguments with spaces.
    const policy = `on_http_request: [{expressions: [\\"req.url.path == '/teapot'\\"], actions: [{type: custom-response, config: {status_code: 418, body: short and stout}}]}]`
    const c = ssh({ forward: `80:127.0.0.1:${upstream.port}`, command: ['http', `--traffic-policy-file="${policy}"`] })
    const host = new URL(await c.url()).hostname
    const teapot = await hostFetch(edge, host, '/teapot')
    expect(teapot.status).toBe(418)
    expect(await teapot.text()).toBe('short and stout')
    expect((await hostFetch(edge, host, '/echo')).status).toBe(200)
    await c.stop()
  })

  test('an upstream the ssh client cannot reach answers 502 at once (no wait for a reconnect)', async () => {
    const closed = await freePort()
    const c = ssh({ forward: `80:127.0.0.1:${closed}`, command: ['http'] })
    const host = new URL(await c.url()).hostname
    const started = performance.now()
    const res = await hostFetch(edge, host, '/echo')
    expect(res.status).toBe(502)
    expect(res.headers.get('warren-error-code')).toMatch(/^ERR_WARREN_/)
    expect(performance.now() - started).toBeLessThan(3000)
    await c.stop()
  })

  test('the API stops an SSH session: ssh exits and the endpoint goes', async () => {
    const c = ssh({ forward: `80:127.0.0.1:${upstream.port}`, command: ['http'] })
    const url = await c.url()
    const auth = { authorization: `Bearer ${API_KEY}` }
    const sessions = (await (await fetch(`http://127.0.0.1:${edge.apiPort}/tunnel-sessions`, { headers: auth })).json()) as { tunnel_sessions: { id: string; endpoints: { url: string }[] }[] }
    const id = sessions.tunnel_sessions.find((s) => s.endpoints.some((e) => e.url === url))!.id
    expect((await fetch(`http://127.0.0.1:${edge.apiPort}/tunnel-sessions/${id}/stop`, { method: 'POST', headers: auth })).status).toBe(204)
    expect(await c.proc.exited).toBe(0)
    expect(c.stdout()).toContain('session closed: stopped through the API')
    expect(await eventually(async () => (await hostFetch(edge, new URL(url).hostname)).status === 404, 5000)).toBe(true)
  })

  test('several -R in one command: one endpoint each, a wildcard the account owns, one it does not', async () => {
    const c = ssh({ forward: [`*.wild.warren.localhost:80:127.0.0.1:${upstream.port}`, `80:127.0.0.1:${upstream.port}`], command: ['http'] })
    await c.waitForOutput(new RegExp(`Forwarding\\s+http://\\*\\.wild\\.warren\\.localhost:${edge.httpPort}$`))
    const random = await c.waitForOutput(/Forwarding\s+http:\/\/[0-9a-f]{12}\./)
    expect((await hostFetch(edge, 'deep.wild.warren.localhost', '/echo')).status).toBe(200)
    expect((await hostFetch(edge, new URL(random.trim().split(/\s+/)[1]!).hostname, '/echo')).status).toBe(200)
    await c.stop()

    const refused = ssh({ forward: `*.example.com:80:127.0.0.1:${upstream.port}`, command: ['http'] })
    expect(await refused.proc.exited).not.toBe(0)
    expect(refused.stderr()).toContain('ERR_WARREN_4003')
  })

  test('ssh -N (no command): the forward is refused after the wait and the connection closes', async () => {
    const c = ssh({ forward: `80:127.0.0.1:${upstream.port}`, command: [], sshArgs: ['-N', '-o', 'ExitOnForwardFailure=yes'] })
    expect(await c.proc.exited).not.toBe(0)
    expect(c.stderr()).toContain('remote port forwarding failed')
    await edge.waitForLog(/ssh forward without a command.*ERR_WARREN_4032/)
  }, 20_000)

  test('websockets work through an SSH session', async () => {
    const c = ssh({ forward: `80:127.0.0.1:${upstream.port}`, command: ['http'] })
    const host = new URL(await c.url()).hostname
    const ws = new WebSocket(`ws://127.0.0.1:${edge.httpPort}/socket`, { headers: { host } } as unknown as string[])
    ws.binaryType = 'arraybuffer'
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve()
      ws.onerror = () => reject(new Error('websocket failed to open'))
    })
    const next = () => new Promise<MessageEvent>((r) => ws.addEventListener('message', r, { once: true }))
    ws.send('hello over ssh')
    expect((await next()).data).toBe('hello over ssh')
    const bytes = new Uint8Array(200_000).map((_, i) => i % 251)
    ws.send(bytes)
    expect(Bun.hash(new Uint8Array((await next()).data as ArrayBuffer))).toBe(Bun.hash(bytes))
    ws.close(1000)
    await c.stop()
  })

  test('ssh killed mid-download: the client sees the response cut short (never a hang) and the endpoint goes', async () => {
    const c = ssh({ forward: `80:127.0.0.1:${upstream.port}`, command: ['http'] })
    const host = new URL(await c.url()).hostname
    const res = await hostFetch(edge, host, `/bytes/${1024 ** 3}`)
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    let received = 0
    while (received < 1024 * 1024) received += (await reader.read()).value?.length ?? 0
    c.proc.kill('SIGKILL')
    const outcome = await Promise.race([
      (async () => {
        try {
          for (;;) {
            const { done, value } = await reader.read()
            if (done) return 'ended'
            received += value.length
          }
        } catch {
          return 'error'
        }
      })(),
      Bun.sleep(15_000).then(() => 'hang'),
    ])
    expect(outcome).not.toBe('hang')
    expect(received).toBeLessThan(1024 ** 3)
    expect(await eventually(async () => (await hostFetch(edge, host, '/echo')).status === 404, 5000)).toBe(true)
  }, 30_000)

  test('--pooling-enabled: two SSH sessions share one URL; without it the second is refused (ERR_WARREN_1005)', async () => {
    const a = ssh({ forward: `pool.warren.localhost:80:127.0.0.1:${upstream.port}`, command: ['http', '--pooling-enabled'] })
    const b = ssh({ forward: `pool.warren.localhost:80:127.0.0.1:${upstream2.port}`, command: ['http', '--pooling-enabled'] })
    expect(await a.url()).toBe(`http://pool.warren.localhost:${edge.httpPort}`)
    expect(await b.url()).toBe(`http://pool.warren.localhost:${edge.httpPort}`)
    const seen = new Set<string>()
    for (let i = 0; i < 30 && seen.size < 2; i++) seen.add(((await (await hostFetch(edge, 'pool.warren.localhost', '/echo')).json()) as { upstream: string }).upstream)
    expect([...seen].sort()).toEqual(['ssh-origin', 'ssh-origin-2'])
    const c = ssh({ forward: `pool.warren.localhost:80:127.0.0.1:${upstream.port}`, command: ['http'] })
    expect(await c.proc.exited).not.toBe(0)
    expect(c.stderr()).toContain('ERR_WARREN_1005')
    await Promise.all([a.stop(), b.stop()])
  })
})
