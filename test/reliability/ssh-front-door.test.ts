import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client } from 'ssh2'
import { freePort } from '../e2e/framework/ports.ts'
import { eventually, hostFetch, startEdge, type Edge } from '../e2e/framework/process.ts'
import { makeKey, sshUnavailable, startSsh } from '../e2e/framework/ssh.ts'
import { startUpstream } from '../e2e/framework/upstreams.ts'

// The SSH front door under abuse, against the compiled edge: junk on the port, password guessing on
// one connection, and many sessions coming and going. The edge must stay up and leak no endpoints.

const unavailable = sshUnavailable()
if (unavailable) console.warn(`test/reliability/ssh-front-door.test.ts skipped: ${unavailable}`)

const API_KEY = 'ssh-reliability-key'
const upstream = startUpstream('ssh-reliability-origin')
const dir = mkdtempSync(join(tmpdir(), 'warren-ssh-rel-'))
let edge: Edge
let sshPort: number
let key: { path: string; publicKey: string }

async function agentEndpoints(): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${edge.apiPort}/endpoints`, { headers: { authorization: `Bearer ${API_KEY}` } })
  return ((await res.json()) as { endpoints: { type: string }[] }).endpoints.filter((e) => e.type === 'agent').length
}

/** One working SSH session: binds, serves one request, ends. */
async function roundTrip(): Promise<void> {
  const c = startSsh({ port: sshPort, dir, key: key.path, forward: `80:127.0.0.1:${upstream.port}`, command: ['http'] })
  try {
    const host = new URL(await c.url()).hostname
    expect((await hostFetch(edge, host, '/echo')).status).toBe(200)
  } finally {
    await c.stop()
  }
}

beforeAll(async () => {
  if (unavailable) return
  key = makeKey(dir, 'id_rel')
  sshPort = await freePort()
  edge = await startEdge({
    args: ['--ssh', `127.0.0.1:${sshPort}`],
    config: `api_keys: [${API_KEY}]\naccounts:\n  - name: alice\n    authtokens: [the-token]\n    domains: ["*.warren.localhost"]\n    ssh_keys: ["${key.publicKey}"]\n`,
  })
})

afterAll(async () => {
  await edge?.stop()
  upstream.stop(true)
  rmSync(dir, { recursive: true, force: true })
})

describe.skipIf(!!unavailable)('SSH front door under abuse (compiled edge)', () => {
  test('junk, an HTTP request and a half-sent version line on the SSH port: closed, the edge keeps serving', async () => {
    for (const junk of ['GET / HTTP/1.1\r\nHost: x\r\n\r\n', '\x00\x01\x02\xff'.repeat(4096), 'SSH-2.0-half']) {
      const closed = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 40_000)
        void Bun.connect({
          hostname: '127.0.0.1',
          port: sshPort,
          socket: {
            open: (s) => void s.write(junk),
            data: () => {},
            close: () => (clearTimeout(timer), resolve(true)),
            error: () => {},
          },
        })
        // The half-sent version line never completes: the client gives up, the edge must not care.
        if (junk === 'SSH-2.0-half') setTimeout(() => (clearTimeout(timer), resolve(true)), 500)
      })
      expect(closed).toBe(true)
    }
    await roundTrip()
  }, 60_000)

  test('password guessing on one connection: cut off after 10 attempts, logged with ERR_WARREN_4031', async () => {
    let attempts = 0
    const outcome = await new Promise<string>((resolve) => {
      const client = new Client()
      client.on('ready', () => resolve('logged in'))
      client.on('error', () => resolve(`closed after ${attempts}`))
      client.on('close', () => resolve(`closed after ${attempts}`))
      client.connect({
        host: '127.0.0.1',
        port: sshPort,
        username: 'v2',
        readyTimeout: 20_000,
        authHandler: (_methods, _partial, next) => {
          attempts++
          if (attempts > 30) return next(false as never)
          next({ type: 'password', username: 'v2', password: `guess-${attempts}` })
        },
      })
    })
    expect(outcome).toStartWith('closed after')
    expect(attempts).toBeGreaterThanOrEqual(10)
    expect(attempts).toBeLessThanOrEqual(12)
    await edge.waitForLog(/ssh login refused.*ERR_WARREN_4031/)
  }, 30_000)

  test('30 sessions one after another, 10 at once: every endpoint is removed, none leaks', async () => {
    for (let i = 0; i < 20; i++) await roundTrip()
    await Promise.all(Array.from({ length: 10 }, () => roundTrip()))
    expect(await eventually(async () => (await agentEndpoints()) === 0, 5000)).toBe(true)
    const sessions = (await (await fetch(`http://127.0.0.1:${edge.apiPort}/tunnel-sessions`, { headers: { authorization: `Bearer ${API_KEY}` } })).json()) as { tunnel_sessions: unknown[] }
    expect(sessions.tunnel_sessions).toHaveLength(0)
  }, 90_000)
})
