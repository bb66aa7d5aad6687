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
    expect(r.out).toMatch(/^warren \d+\.\d+\.\d+ \(bun 1\.4\.5\)\n$/)
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
