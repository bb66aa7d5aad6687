import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './framework/ports.ts'
import { WARREN_BIN } from './framework/process.ts'

// A start-up failure of `warren serve`: one line (listener, address, cause, hint, code), exit code ≠ 0,
// and nothing left listening.
let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'warren-startup-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function serve(args: string[]): { code: number; err: string } {
  const proc = Bun.spawnSync([WARREN_BIN, 'serve', '--certs', join(dir, 'certs'), '--policies', join(dir, 'policies'), '--log-format', 'json', ...args], { cwd: dir, timeout: 30_000 })
  return { code: proc.exitCode ?? -1, err: proc.stderr.toString() }
}

/** True when something accepts connections on the port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port })
    s.once('connect', () => (s.destroy(), resolve(true)))
    s.once('error', () => resolve(false))
  })
}

async function occupy(port: number): Promise<Server> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return server
}

describe('warren serve start-up failures', () => {
  test.each(['http', 'https', 'agent', 'api'] as const)('listen.%s already in use: one line with the address, cause, hint and code; exit 1; nothing listening', async (taken) => {
    const ports = { http: await freePort(), https: await freePort(), agent: await freePort(), api: await freePort() }
    const holder = await occupy(ports[taken])
    try {
      const r = serve(Object.entries(ports).flatMap(([name, port]) => [`--${name}`, `127.0.0.1:${port}`]))
      expect(r.code).toBe(1)
      const lines = r.err.trim().split('\n')
      expect(lines).toHaveLength(1)
      expect(lines[0]).toBe(
        `warren serve: Cannot listen on 127.0.0.1:${ports[taken]} (listen.${taken}): address already in use (EADDRINUSE). Hint: another process listens there (find it: ss -ltnp 'sport = :${ports[taken]}'); stop it or choose another address with --${taken} HOST:PORT or listen.${taken} in warren.yaml [ERR_WARREN_1010]`,
      )
      expect(r.err).not.toContain('    at ')
      // The process is gone: no listener it opened before the failure is left behind.
      for (const [name, port] of Object.entries(ports)) if (name !== taken) expect(await listening(port)).toBe(false)
    } finally {
      holder.close()
    }
  })

  test('an address that is not this host: EADDRNOTAVAIL with a hint', async () => {
    const r = serve(['--http', `127.0.0.1:${await freePort()}`, '--https', '192.0.2.1:8443', '--agent', `127.0.0.1:${await freePort()}`, '--api', `127.0.0.1:${await freePort()}`])
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/^warren serve: Cannot listen on 192\.0\.2\.1:8443 \(listen\.https\): the address is not one of this host \(EADDRNOTAVAIL\)\. Hint: .* \[ERR_WARREN_1010\]\n$/)
  })

  test.each([
    {
      desc: 'tcp_ports backwards',
      yaml: 'accounts:\n  - name: a\n    tcp_ports: "30000-29000"\n',
      line: /^warren serve: warren\.yaml:3:16: accounts\[0\]\.tcp_ports: must be ports or ranges LOW-HIGH .* \[ERR_WARREN_1001\]\n$/,
    },
    {
      desc: 'the same authtoken in two accounts (plain and sha256 forms)',
      yaml: `accounts:\n  - name: a\n    authtokens: [t1]\n  - name: b\n    authtokens: [other, "sha256:${createHash('sha256').update('t1').digest('hex')}"]\n`,
      line: /^warren serve: warren\.yaml:5:25: accounts "a" and "b" list the same authtoken.* \[ERR_WARREN_1001\]\n$/,
    },
  ])('config error, $desc: file:line:col and the code, no stack', ({ yaml, line }) => {
    writeFileSync(join(dir, 'warren.yaml'), yaml)
    try {
      const r = serve(['--config', 'warren.yaml'])
      expect(r.code).toBe(1)
      expect(r.err).toMatch(line)
    } finally {
      rmSync(join(dir, 'warren.yaml'))
    }
  })
})
