/**
 * A real Redis for tests: Debian's `redis-server` on a free loopback port, without persistence, that
 * a test can kill (SIGKILL) and start again on the same port, empty, as a crashed Redis comes back.
 */
import type { Subprocess } from 'bun'
import { ensureDebianPackage } from '../e2e/framework/apt.ts'
import { freePort } from '../e2e/framework/ports.ts'

const REDIS_SERVER = '/usr/bin/redis-server'

/** Why Redis cannot be had (undefined when `redis-server` is installed, or could be). */
export function redisUnavailable(): string | undefined {
  const have = () => Bun.which('redis-server') !== null || Bun.file(REDIS_SERVER).size > 0
  return ensureDebianPackage('redis-server', have) ? undefined : 'the Debian package "redis-server" is not installed and could not be installed (apt-get install -y redis-server)'
}

export interface RedisServer {
  port: number
  /** `redis://127.0.0.1:<port>` */
  url: string
  /** SIGKILL, as a crash: nothing is saved. */
  kill(): Promise<void>
  /** Starts it again on the same port (empty). */
  restart(): Promise<void>
  /** SIGSTOP: connections stay open and nothing answers (a hung Redis); `resume` sends SIGCONT. */
  pause(): void
  resume(): void
  stop(): Promise<void>
}

/** Starts redis-server on a free loopback port and waits until it answers PING. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort()
  let proc: Subprocess | undefined
  const start = async () => {
    proc = Bun.spawn([Bun.which('redis-server') ?? REDIS_SERVER, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdout: 'ignore', stderr: 'ignore' })
    const deadline = Date.now() + 5000
    while (Date.now() < deadline) {
      if (await ping(port)) return
      await Bun.sleep(25)
    }
    throw new Error(`redis-server on port ${port} did not answer within 5 s`)
  }
  await start()
  const kill = async () => {
    proc?.kill('SIGKILL')
    await proc?.exited
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: start,
    pause: () => void proc?.kill('SIGSTOP'),
    resume: () => void proc?.kill('SIGCONT'),
    stop: kill,
  }
}

/** One PING over a fresh connection: whether `+PONG` came back. */
async function ping(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    let done = false
    const finish = (ok: boolean, socket?: { end(): void }) => {
      if (done) return
      done = true
      socket?.end()
      resolve(ok)
    }
    Bun.connect({
      hostname: '127.0.0.1',
      port,
      socket: {
        open: (s) => void s.write('PING\r\n'),
        data: (s, chunk) => finish(chunk.toString().startsWith('+PONG'), s),
        close: () => finish(false),
        error: () => finish(false),
      },
    }).catch(() => finish(false))
    setTimeout(() => finish(false), 500)
  })
}
