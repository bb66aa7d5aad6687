import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve, dirname } from 'node:path'
import type { Subprocess } from 'bun'
import { freePort } from './ports.ts'

/** The compiled binary under test (built by `bun run build`; WARREN_BIN overrides). */
export const WARREN_BIN = resolve(process.env.WARREN_BIN ?? 'dist/warren')

export interface Edge {
  dir: string
  policies: string
  httpPort: number
  /** The TLS port (https:// and tls:// endpoints). */
  httpsPort: number
  /** The development CA the edge issues from (`certs/dev-ca.pem`). */
  caPath: string
  /** The REST API port: a free one, so edges never fight over the default 4041. */
  apiPort: number
  /** Where agents and SDKs connect (`server_addr`). */
  agentPort: number
  /** `http://127.0.0.1:<port>` */
  base: string
  proc: Subprocess<'ignore', 'pipe', 'pipe'>
  /** Every log line so far (stdout and stderr). */
  logs(): string
  /** Resolves when a log line matches, or rejects after `timeoutMs`. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>
  writePolicy(name: string, text: string): void
  removePolicy(name: string): void
  stop(): Promise<void>
}

export interface EdgeOptions {
  policies?: Record<string, string>
  config?: string
  args?: string[]
  /** Added to the test's own environment. */
  env?: Record<string, string>
}

/**
 * Starts `warren serve` from the compiled binary with a temp policies directory and free loopback
 * ports, and waits until it reports that it listens.
 */
export async function startEdge(options: EdgeOptions = {}): Promise<Edge> {
  // Free ports are found by binding and releasing them, so another process can take one meanwhile:
  // when the edge cannot listen, try again with new ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEdgeOnce(options)
    } catch (err) {
      if (attempt >= 3 || !/Failed to listen|EADDRINUSE|address already in use/i.test(String(err))) throw err
    }
  }
}

async function startEdgeOnce(options: EdgeOptions): Promise<Edge> {
  const dir = mkdtempSync(join(tmpdir(), 'warren-e2e-'))
  const policies = join(dir, 'policies')
  mkdirSync(policies)
  for (const [name, text] of Object.entries(options.policies ?? {})) {
    mkdirSync(dirname(join(policies, name)), { recursive: true })
    writeFileSync(join(policies, name), text)
  }
  const httpPort = await freePort()
  const httpsPort = await freePort()
  const apiPort = await freePort()
  const agentPort = await freePort()
  const args = [WARREN_BIN, 'serve', '--policies', policies, '--certs', join(dir, 'certs'), '--http', `127.0.0.1:${httpPort}`, '--https', `127.0.0.1:${httpsPort}`, '--api', `127.0.0.1:${apiPort}`, '--agent', `127.0.0.1:${agentPort}`, '--log-format', 'json', ...(options.args ?? [])]
  if (options.config !== undefined) {
    writeFileSync(join(dir, 'warren.yaml'), options.config)
    args.push('--config', join(dir, 'warren.yaml'))
  }
  const proc = Bun.spawn(args, { cwd: dir, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', env: { ...process.env, ...options.env } })
  let buffer = ''
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = []
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder()
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true })
      buffer += text
      if (process.env.WARREN_E2E_VERBOSE) process.stderr.write(text)
      for (const w of [...waiters]) {
        const line = buffer.split('\n').find((l) => w.pattern.test(l))
        if (line) {
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve(line)
        }
      }
    }
  }
  void pump(proc.stdout)
  void pump(proc.stderr)
  const edge: Edge = {
    dir,
    policies,
    httpPort,
    httpsPort,
    apiPort,
    agentPort,
    caPath: join(dir, 'certs', 'dev-ca.pem'),
    base: `http://127.0.0.1:${httpPort}`,
    proc,
    logs: () => buffer,
    waitForLog(pattern, timeoutMs = 5000) {
      const line = buffer.split('\n').find((l) => pattern.test(l))
      if (line) return Promise.resolve(line)
      return new Promise((resolve, reject) => {
        const w = { pattern, resolve: (l: string) => (clearTimeout(timer), resolve(l)) }
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1)
          reject(new Error(`no log line matching ${pattern} within ${timeoutMs} ms; logs:\n${buffer}`))
        }, timeoutMs)
        waiters.push(w)
      })
    },
    writePolicy(name, text) {
      mkdirSync(dirname(join(policies, name)), { recursive: true })
      writeFileSync(join(policies, name), text)
    },
    removePolicy(name) {
      rmSync(join(policies, name), { force: true })
    },
    async stop() {
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
      await proc.exited
      clearTimeout(timer)
      rmSync(dir, { recursive: true, force: true })
    },
  }
  try {
    // A process that exits at startup (a port taken, a bad config) fails at once, not after the timeout.
    await Promise.race([
      edge.waitForLog(/warren edge started/, 10_000),
      proc.exited.then(async (code) => {
        await Bun.sleep(100) // let the last stderr lines arrive
        throw new Error(`warren serve exited with ${code}:\n${buffer}`)
      }),
    ])
  } catch (err) {
    proc.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
  return edge
}

/** Runs a request with an explicit Host header against the edge (fetch would send 127.0.0.1). */
export function hostFetch(edge: Edge, host: string, path = '/', init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers)
  headers.set('host', host)
  return fetch(`${edge.base}${path}`, { ...init, headers, redirect: 'manual' })
}

/** The log lines of one kind, parsed (JSON logs; workers tag theirs with `worker`). */
export function logLines(e: Edge, msg: string): any[] {
  return e.logs().split('\n').flatMap((l) => {
    try {
      const o = JSON.parse(l)
      return o.msg === msg ? [o] : []
    } catch {
      return []
    }
  })
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns whether it succeeded. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 2000, everyMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return true
    await Bun.sleep(everyMs)
  }
  return false
}

/** The events an edge's file sink wrote so far (`path: events.jsonl` in its config), parsed. */
export function fileEvents(edge: Edge, name = 'events.jsonl'): any[] {
  const path = join(edge.dir, name)
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []
}
