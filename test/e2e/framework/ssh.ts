/**
 * OpenSSH's `ssh` as the real client of the SSH front door. Installs Debian's openssh-client when
 * missing (root), makes keys with ssh-keygen, and runs `ssh -T -R … <command>` with a key or with a
 * password given through SSH_ASKPASS (no sshpass needed).
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Subprocess } from 'bun'
import { ensureDebianPackage } from './apt.ts'

/** Why ssh cannot run here, or undefined when it can (installs openssh-client when missing and root). */
export function sshUnavailable(): string | undefined {
  const have = () => Bun.which('ssh') !== null && Bun.which('ssh-keygen') !== null
  return ensureDebianPackage('openssh-client', have) ? undefined : 'the Debian package "openssh-client" (ssh, ssh-keygen) is not installed and could not be installed'
}

/** Makes an ed25519 key pair `<dir>/<name>` and returns its path and public key line. */
export function makeKey(dir: string, name: string): { path: string; publicKey: string } {
  const path = join(dir, name)
  const r = Bun.spawnSync(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path])
  if (r.exitCode !== 0) throw new Error(`ssh-keygen failed: ${r.stderr.toString()}`)
  return { path, publicKey: readFileSync(`${path}.pub`, 'utf8').trim() }
}

/** `SHA256:…` of a key, as `ssh-keygen -lf` prints it. */
export function fingerprint(path: string): string {
  const out = Bun.spawnSync(['ssh-keygen', '-lf', `${path}.pub`]).stdout.toString()
  const m = /(SHA256:\S+)/.exec(out)
  if (!m) throw new Error(`no fingerprint in "${out}"`)
  return m[1]!
}

export interface SshClient {
  proc: Subprocess<'ignore', 'pipe', 'pipe'>
  /** What the session printed (stdout) and ssh's own messages plus our refusals (stderr). */
  stdout(): string
  stderr(): string
  /** Resolves with the first stdout line matching, rejects after `timeoutMs` or when ssh exits first. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<string>
  /** The first `Forwarding <url>` the session printed. */
  url(timeoutMs?: number): Promise<string>
  stop(): Promise<void>
}

/**
 * Runs `ssh -T -p <port> -R <forward> v2@127.0.0.1 <command…>` against the edge. Authenticates with
 * `key` (a private key path) or `password` (over SSH_ASKPASS), nothing else.
 */
export function startSsh(options: { port: number; forward: string | string[]; command: string[]; key?: string; password?: string; dir: string; sshArgs?: string[] }): SshClient {
  const args = ['ssh', '-F', '/dev/null', '-T', '-p', String(options.port), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=10']
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: options.dir }
  if (options.key) args.push('-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'PreferredAuthentications=publickey', '-i', options.key)
  else {
    const askpass = join(options.dir, `askpass-${Math.random().toString(36).slice(2)}.sh`)
    writeFileSync(askpass, `#!/bin/sh\nprintf '%s\\n' '${(options.password ?? '').replace(/'/g, "'\\''")}'\n`)
    chmodSync(askpass, 0o700)
    Object.assign(env, { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' })
    args.push('-o', 'PreferredAuthentications=password', '-o', 'PubkeyAuthentication=no', '-o', 'NumberOfPasswordPrompts=1')
  }
  for (const f of [options.forward].flat()) args.push('-R', f)
  args.push(...(options.sshArgs ?? []), 'v2@127.0.0.1', ...options.command)
  const proc = Bun.spawn(args, { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', env })
  let out = ''
  let err = ''
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = []
  const check = () => {
    for (const w of [...waiters]) {
      const line = out.split('\n').find((l) => w.pattern.test(l))
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(line)
      }
    }
  }
  const pump = async (stream: ReadableStream<Uint8Array>, into: (t: string) => void) => {
    const decoder = new TextDecoder()
    for await (const chunk of stream) into(decoder.decode(chunk, { stream: true }))
  }
  void pump(proc.stdout, (t) => ((out += t), check()))
  void pump(proc.stderr, (t) => (err += t))
  const client: SshClient = {
    proc,
    stdout: () => out,
    stderr: () => err,
    waitForOutput(pattern, timeoutMs = 15_000) {
      const line = out.split('\n').find((l) => pattern.test(l))
      if (line !== undefined) return Promise.resolve(line)
      return new Promise((resolve, reject) => {
        const fail = (why: string) => {
          clearTimeout(timer)
          const i = waiters.indexOf(w)
          if (i >= 0) waiters.splice(i, 1)
          reject(new Error(`no ssh output matching ${pattern}: ${why}\nstdout:\n${out}\nstderr:\n${err}`))
        }
        const w = { pattern, resolve: (l: string) => (clearTimeout(timer), resolve(l)) }
        const timer = setTimeout(() => fail(`not within ${timeoutMs} ms`), timeoutMs)
        waiters.push(w)
        void proc.exited.then(async (code) => {
          await Bun.sleep(50)
          if (waiters.includes(w)) fail(`ssh exited with ${code}`)
        })
      })
    },
    async url(timeoutMs) {
      const line = await client.waitForOutput(/^Forwarding\s+\S+/, timeoutMs)
      return line.trim().split(/\s+/)[1]!
    },
    async stop() {
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3000)
      await proc.exited
      clearTimeout(timer)
    },
  }
  return client
}
