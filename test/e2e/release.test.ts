import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Subprocess } from 'bun'
import { curl } from './framework/curl.ts'
import { freePort } from './framework/ports.ts'
import { WARREN_BIN } from './framework/process.ts'
import { startUpstream } from './framework/upstreams.ts'

// The release as a newcomer gets it: the linux-x64 binary alone in an empty directory (no
// node_modules, no repository), through the README's "From a release binary" steps, and install.sh.
const RELEASE_BIN = resolve('dist/release/warren-linux-x64')
const BIN = existsSync(RELEASE_BIN) ? RELEASE_BIN : WARREN_BIN
const upstream = startUpstream('release-origin')
let dir: string
const procs: Subprocess[] = []

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'warren-release-'))
  copyFileSync(BIN, join(dir, 'warren'))
  Bun.spawnSync(['chmod', '755', join(dir, 'warren')])
  if (BIN !== RELEASE_BIN) console.log(`release.test: ${RELEASE_BIN} not built (scripts/release); testing ${BIN}, the same linux-x64 build`)
})
afterAll(async () => {
  for (const p of procs) p.kill('SIGTERM')
  await Promise.all(procs.map((p) => p.exited))
  upstream.stop(true)
  rmSync(dir, { recursive: true, force: true })
})

/** Starts `./warren …` in the release directory; resolves with the first line matching `pattern`. */
async function launch(args: string[], pattern: RegExp): Promise<{ proc: Subprocess; line: string; output: () => string }> {
  const proc = Bun.spawn(['./warren', ...args], { cwd: dir, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', env: { PATH: '/usr/bin:/bin', HOME: dir } })
  procs.push(proc)
  let buffer = ''
  const found = new Promise<string>((resolveLine, reject) => {
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within 15 s:\n${buffer}`)), 15_000)
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder()
      for await (const chunk of stream) {
        buffer += decoder.decode(chunk, { stream: true })
        const line = buffer.split('\n').find((l) => pattern.test(l))
        if (line) (clearTimeout(timer), resolveLine(line))
      }
    }
    void pump(proc.stdout as ReadableStream<Uint8Array>)
    void pump(proc.stderr as ReadableStream<Uint8Array>)
    void proc.exited.then((code) => setTimeout(() => reject(new Error(`./warren ${args[0]} exited ${code}:\n${buffer}`)), 100))
  })
  return { proc, line: await found, output: () => buffer }
}

describe('the release binary alone in an empty directory', () => {
  test('warren version names the version, the commit and the build date', () => {
    expect(readdirSync(dir)).toEqual(['warren'])
    const r = Bun.spawnSync(['./warren', 'version'], { cwd: dir })
    expect(r.stdout.toString()).toMatch(/^warren \d+\.\d+\.\d+ \(commit [0-9a-f]{12}(-dirty)?, built \d{4}-\d\d-\d\dT[\d:]+Z, bun 1\.4\.5\)\n$/)
  })

  test("the README's steps: serve, a policy file, an agent, the printed URL answers", async () => {
    const ports = { http: await freePort(), https: await freePort(), agent: await freePort(), api: await freePort() }
    const listen = Object.entries(ports).map(([k, p]) => `  ${k}: 127.0.0.1:${p}`).join('\n')
    // README: warren.yaml with an account for your agents (ports moved off the defaults for the test).
    writeFileSync(join(dir, 'warren.yaml'), `listen:\n${listen}\naccounts:\n  - name: me\n    authtokens: [change-me]\n    domains: ["*.warren.localhost"]\n`)
    await launch(['serve'], /warren edge started/)
    expect(existsSync(join(dir, 'certs', 'dev-ca.pem'))).toBe(true)
    expect(existsSync(join(dir, 'policies'))).toBe(true)
    // README: a cloud endpoint is a file in policies/, picked up while the edge runs.
    writeFileSync(join(dir, 'policies', 'hello.yml'), 'url: http://hello.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response, config: {body: "hello from warren"}}]\n')
    let hello = { status: 0, body: '' }
    for (let i = 0; i < 50 && hello.status !== 200; i++) {
      await Bun.sleep(100)
      hello = await curl(['--resolve', `hello.warren.localhost:${ports.http}:127.0.0.1`, `http://hello.warren.localhost:${ports.http}/`])
    }
    expect(hello.body).toBe('hello from warren')
    // README: an agent for a local service; the URL it prints works as printed.
    const agent = await launch(['http', String(upstream.port), '--authtoken', 'change-me', '--server-addr', `127.0.0.1:${ports.agent}`, '--server-ca', 'certs/dev-ca.pem', '--log', 'false'], /^Forwarding /)
    const url = /^Forwarding (\S+) -> /.exec(agent.line)![1]!
    expect(url).toMatch(new RegExp(`^https://[0-9a-f]{12}\\.warren\\.localhost:${ports.https}$`))
    const u = new URL(url)
    const res = await curl(['--cacert', join(dir, 'certs', 'dev-ca.pem'), '--resolve', `${u.hostname}:${u.port}:127.0.0.1`, `${url}/echo`])
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toMatchObject({ upstream: 'release-origin', path: '/echo' })
  })
})

describe('install.sh', () => {
  function release(tamper: boolean): string {
    const rel = mkdtempSync(join(tmpdir(), 'warren-rel-'))
    copyFileSync(BIN, join(rel, 'warren-linux-x64'))
    copyFileSync('scripts/install.sh', join(rel, 'install.sh'))
    const sum = createHash('sha256').update(readFileSync(join(rel, 'warren-linux-x64'))).digest('hex')
    writeFileSync(join(rel, 'SHA256SUMS'), `${tamper ? '0'.repeat(64) : sum}  warren-linux-x64\n`)
    return rel
  }

  test.skipIf(process.arch !== 'x64' || process.platform !== 'linux')('picks warren-linux-x64, checks its checksum and installs it', () => {
    const rel = release(false)
    const prefix = join(dir, 'prefix-ok')
    try {
      const r = Bun.spawnSync(['sh', join(rel, 'install.sh')], { env: { PATH: process.env.PATH ?? '', HOME: dir, WARREN_PREFIX: prefix } })
      expect(r.exitCode).toBe(0)
      expect(r.stdout.toString()).toContain(`installed warren-linux-x64 (`)
      expect(Bun.spawnSync([join(prefix, 'bin', 'warren'), 'version']).stdout.toString()).toStartWith('warren ')
    } finally {
      rmSync(rel, { recursive: true, force: true })
    }
  })

  test.skipIf(process.arch !== 'x64' || process.platform !== 'linux')('a checksum mismatch installs nothing', () => {
    const rel = release(true)
    const prefix = join(dir, 'prefix-bad')
    mkdirSync(prefix)
    try {
      const r = Bun.spawnSync(['sh', join(rel, 'install.sh')], { env: { PATH: process.env.PATH ?? '', HOME: dir, WARREN_PREFIX: prefix } })
      expect(r.exitCode).toBe(1)
      expect(r.stderr.toString()).toContain('checksum mismatch for warren-linux-x64')
      expect(existsSync(join(prefix, 'bin', 'warren'))).toBe(false)
    } finally {
      rmSync(rel, { recursive: true, force: true })
    }
  })
})
