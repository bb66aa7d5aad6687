import type { Subprocess } from 'bun'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Edge } from './process.ts'
import { WARREN_BIN } from './process.ts'

export interface AgentProcess {
  proc: Subprocess<'ignore', 'pipe', 'pipe'>
  /** Everything printed so far (stdout and stderr). */
  logs(): string
  /** Resolves with the first line matching `pattern`; rejects after `timeoutMs` or when the agent exits. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>
  /** Resolves with the URLs of the first `count` `Forwarding <url> -> <upstream>` lines. */
  forwarding(count?: number, timeoutMs?: number): Promise<string[]>
  /** SIGTERM, then waits for the exit code (SIGKILL after 5 s). */
  stop(): Promise<number>
}

/**
 * Runs the compiled `warren` agent (`warren http|tcp|tls|start …`) as its own process, with a
 * private config directory (so a developer's own agent.yml never leaks in) and JSON logs.
 */
export function startAgent(args: string[], options: { env?: Record<string, string> } = {}): AgentProcess {
  const home = mkdtempSync(join(tmpdir(), 'warren-agent-home-'))
  const proc = Bun.spawn([WARREN_BIN, ...args], {
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    env: { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, '.config'), WARREN_AUTHTOKEN: '', ...options.env },
  })
  let buffer = ''
  let exited = false
  const waiters = new Set<() => void>()
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder()
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true })
      buffer += text
      if (process.env.WARREN_E2E_VERBOSE) process.stderr.write(`[agent] ${text}`)
      for (const w of [...waiters]) w()
    }
  }
  void pump(proc.stdout)
  void pump(proc.stderr)
  void proc.exited.then(() => {
    exited = true
    for (const w of [...waiters]) w()
  })

  function waitFor<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const tick = () => {
        const found = check()
        if (found !== undefined) return finish(() => resolve(found))
        if (exited) return finish(() => reject(new Error(`the agent exited (${proc.exitCode}) before ${what}; output:\n${buffer}`)))
      }
      const finish = (fn: () => void) => {
        clearTimeout(timer)
        waiters.delete(tick)
        fn()
      }
      const timer = setTimeout(() => finish(() => reject(new Error(`no ${what} within ${timeoutMs} ms; output:\n${buffer}`))), timeoutMs)
      waiters.add(tick)
      tick()
    })
  }

  return {
    proc,
    logs: () => buffer,
    waitForLog: (pattern, timeoutMs = 5000) => waitFor(() => buffer.split('\n').find((l) => pattern.test(l)), timeoutMs, `log line matching ${pattern}`),
    forwarding: (count = 1, timeoutMs = 5000) =>
      waitFor(
        () => {
          const urls = [...buffer.matchAll(/Forwarding (\S+) -> /g)].map((m) => m[1]!)
          return urls.length >= count ? urls.slice(0, count) : undefined
        },
        timeoutMs,
        `${count} Forwarding line(s)`,
      ),
    async stop() {
      if (!exited) proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
      const code = await proc.exited
      clearTimeout(timer)
      rmSync(home, { recursive: true, force: true })
      return code
    },
  }
}

/**
 * The flags that point an agent at an edge started by `startEdge`. The inspector stays off unless a
 * `webAddr` is given (its default port 4040 is shared by everything on the machine).
 */
export function edgeFlags(edge: Edge, authtoken: string, options: { webAddr?: string } = {}): string[] {
  return [
    '--server-addr', `127.0.0.1:${edge.agentPort}`, '--server-ca', edge.caPath, '--authtoken', authtoken, '--log-format', 'json',
    ...(options.webAddr ? ['--web-addr', options.webAddr] : ['--inspect=false']),
  ]
}
