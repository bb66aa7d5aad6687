import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './framework/ports.ts'
import { WARREN_BIN } from './framework/process.ts'

function warren(args: string[], cwd?: string): { code: number; out: string; err: string } {
  const proc = Bun.spawnSync([WARREN_BIN, ...args], cwd ? { cwd } : {})
  return { code: proc.exitCode ?? -1, out: proc.stdout.toString(), err: proc.stderr.toString() }
}

let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'warren-cli-'))
  mkdirSync(join(dir, 'good'))
  mkdirSync(join(dir, 'bad'))
  writeFileSync(join(dir, 'good', 'a.yml'), 'url: http://a.example.com\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response}]\n')
  writeFileSync(join(dir, 'bad', 'a.yml'), 'endpoints:\n  - url: tcp://db.example.com\n    binding: public\n')
  writeFileSync(join(dir, 'bad', 'b.yml'), 'url: http://b.example.com\ntraffic_policy:\n  on_http_request:\n    - actions:\n        - type: custom-response\n          config: {status_code: 99}\n')
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('warren CLI (compiled binary)', () => {
  test('--help lists every command', () => {
    const r = warren(['--help'])
    expect(r.code).toBe(0)
    for (const cmd of ['serve', 'policy', 'schema', 'version']) expect(r.out).toContain(`  ${cmd}`)
  })

  test('version', () => {
    const r = warren(['version'])
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/^warren \d+\.\d+\.\d+ \(commit [0-9a-f]{12}(-dirty)?, built \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, bun 1\.4\.5\)\n$/)
  })

  test('unknown command exits 2', () => {
    expect(warren(['frobnicate']).code).toBe(2)
  })

  test('policy check on a good directory exits 0', () => {
    const r = warren(['policy', 'check', join(dir, 'good')])
    expect(r.code).toBe(0)
    expect(r.out).toContain('ok  http://a.example.com')
  })

  test('policy check prints file:line:col: message for every error and exits 1', () => {
    const r = warren(['policy', 'check', 'bad'], dir)
    expect(r.code).toBe(1)
    const lines = r.out.split('\n')
    expect(lines).toContain('bad/a.yml:2:10: Invalid endpoint URL "tcp://db.example.com": tcp endpoints must specify a port [ERR_WARREN_1004]')
    expect(lines.some((l) => /^bad\/b\.yml:6:33: on_http_request\[0\]\.actions\[0\]\.config\.status_code: .*200.* \[ERR_WARREN_2001\]$/.test(l))).toBe(true)
  })

  test('policy test runs the fixtures without listeners', () => {
    const r = warren(['policy', 'test', 'test/fixtures/policies'], process.cwd())
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/\n\d+ passed, 0 failed\n$/)
  })

  test('policy explain shows which rule ended the phase', () => {
    const r = warren(['policy', 'explain', 'test/fixtures/policies/forwarding.policytest.yaml', '--request', 'GET /'], process.cwd())
    expect(r.code).toBe(0)
    expect(r.out).toContain('action 1: forward-external  → forward to http://10.0.0.5:8080 (ends the phase)')
    expect(r.out).toContain('rule 2: not reached (the phase had ended)')
  })

  test('schema prints a JSON Schema that knows the actions', () => {
    const r = warren(['schema'])
    expect(r.code).toBe(0)
    const schema = JSON.parse(r.out)
    expect(schema.$schema).toContain('json-schema.org')
    expect(r.out).toContain('"forward-external"')
    expect(r.out).toContain('"custom-response"')
    expect(JSON.parse(warren(['schema', 'server']).out).properties.listen).toBeDefined()
  })

  test('an unknown key in warren.yaml is an error naming file, line and key', () => {
    writeFileSync(join(dir, 'warren.yaml'), 'listen:\n  http: 127.0.0.1:0\n  htp: 127.0.0.1:1\n')
    const r = warren(['serve', '--config', join(dir, 'warren.yaml')])
    expect(r.code).toBe(1)
    expect(r.err).toContain('warren.yaml:3:8: listen: unknown key "htp"')
    expect(r.err).toContain('ERR_WARREN_1001')
  })

  test('an unknown flag is an error', () => {
    const r = warren(['serve', '--nope'])
    expect(r.code).toBe(1)
    expect(r.err).toContain('--nope')
  })

  test('--help: every line of the details sits under the two-space margin', () => {
    const details = warren(['--help']).out.split('Details:\n')[1]!.trimEnd().split('\n')
    expect(details.length).toBeGreaterThan(10)
    for (const line of details) expect(line).toMatch(/^  \S|^    \S/)
  })
})

describe('errors a newcomer can act on: one line with a code, never a stack', () => {
  test.each([
    { desc: '--url without its value', args: ['http', '8080', '--url'], line: /^warren http: Option '--url <value>' argument missing \[ERR_WARREN_1011\]\nUsage: warren http / },
    { desc: 'policy check of a directory that does not exist', args: ['policy', 'check', '/no/such/dir'], line: /^warren policy: \/no\/such\/dir is not a directory; .* \[ERR_WARREN_1012\]\n$/ },
    { desc: '--server-ca that is not PEM', args: ['http', '8080', '--authtoken', 'x', '--server-ca', 'NOT_PEM'], line: /^warren http: The server CA ".*not-pem\.txt" is not a PEM certificate .*warren ca path.* \[ERR_WARREN_1001\]\n$/ },
  ])('$desc', ({ args, line }) => {
    writeFileSync(join(dir, 'not-pem.txt'), 'this is not a certificate\n')
    const r = warren(args.map((a) => (a === 'NOT_PEM' ? join(dir, 'not-pem.txt') : a)))
    expect(r.code).toBe(1)
    expect(r.err).toMatch(line)
    expect(r.err).not.toContain('    at ')
  })

  test('policy check: a missing ] is reported on its own line, and a CEL error next to an unknown action', () => {
    const bad = join(dir, 'newcomer')
    mkdirSync(bad, { recursive: true })
    writeFileSync(join(bad, 'a.yml'), 'url: https://a.example.com\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: deny}\n\n')
    writeFileSync(join(bad, 'b.yml'), 'url: https://b.example.com\ntraffic_policy:\n  on_http_request:\n    - expressions: ["req.nope == 1"]\n      actions: [{type: nosuch}]\n')
    const r = warren(['policy', 'check', bad])
    expect(r.code).toBe(1)
    expect(r.out).toContain(`${bad}/a.yml:4:29: Flow sequence`)
    expect(r.out).toMatch(/b\.yml:5:\d+: .*unknown action type "nosuch"/)
    expect(r.out).toMatch(/b\.yml:4:\d+: invalid expression "req\.nope == 1".*\[ERR_WARREN_2002\]/)
    expect(r.out).toContain('2 file(s), 0 endpoint(s), 3 error(s)')
  })
})

describe('warren serve startup failures', () => {
  test('a startup error after the first listeners opened exits non-zero instead of lingering', async () => {
    const cwd = join(dir, 'files-mode')
    mkdirSync(join(cwd, 'policies'), { recursive: true })
    mkdirSync(join(cwd, 'certs'), { recursive: true })
    // tls.mode files with no certificate for the agent port: the HTTP listener is already open when this fails.
    writeFileSync(join(cwd, 'warren.yaml'), 'tls:\n  mode: files\n')
    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()])
    const proc = Bun.spawn(
      [WARREN_BIN, 'serve', '--http', `127.0.0.1:${ports[0]}`, '--https', `127.0.0.1:${ports[1]}`, '--agent', `127.0.0.1:${ports[2]}`, '--api', `127.0.0.1:${ports[3]}`],
      { cwd, stdout: 'pipe', stderr: 'pipe' },
    )
    const killer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
    const code = await proc.exited
    clearTimeout(killer)
    const err = await new Response(proc.stderr).text()
    expect(err).toContain('No certificate for the agent port')
    expect(err).toContain('ERR_WARREN_1001')
    expect(code).toBe(1)
  })
})
