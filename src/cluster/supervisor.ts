import type { Socket, Subprocess } from 'bun'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CODES } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'
import { selfCommand } from '../lib/self-command.ts'
import { AcmeHub } from './acme-hub.ts'
import { FrameReader, frameWriter } from './frames.ts'
import { EVENTS_QUEUE_BYTES, type FromHub, type ToHub } from './local-registry.ts'
import { MemberTable } from './members.ts'

/** Environment of a worker process: its number and the supervisor's runtime directory. */
export const WORKER_ENV = 'WARREN_WORKER'
export const CLUSTER_DIR_ENV = 'WARREN_CLUSTER_DIR'
/** The file in the runtime directory holding the shared resume-cookie secret. */
export const COOKIE_SECRET_FILE = 'cookie-secret'

/** Restart backoff: doubles per exit within `STABLE_MS` of the previous start, capped. */
const RESTART_MIN_MS = 100
const RESTART_MAX_MS = 10_000
const STABLE_MS = 30_000

export interface SupervisorOptions {
  count: number
  /** `warren serve` arguments for each worker (without `--workers`). */
  args: string[]
  /** How long a dead worker's agent endpoints stay reserved for their agents (ms). */
  graceMs: number
  log: Logger
}

type Conn = {
  member: string | undefined
  link: string
  reader: FrameReader
  out: ReturnType<typeof frameWriter>
  /** The worker has `/events/stream` clients: the others' events come to it. */
  listening: boolean
  /** What it was last told about the others listening. */
  wanted: boolean
  /** The last `members` round it applied. */
  applied: number
}

/**
 * `warren serve --workers N`: this process listens on no public port. It runs N workers (this same
 * executable, `warren serve` with the same arguments) that share the listeners through SO_REUSEPORT,
 * keeps the registry of what each holds (the hub of the local link), restarts a worker that dies,
 * and passes SIGTERM/SIGINT (drain) and SIGHUP (reload) on. Worker 1 starts first and the others
 * once it serves, so what it creates in certs/ (the development CA, the SSH host key) exists once.
 */
export async function superviseWorkers(options: SupervisorOptions): Promise<number> {
  const { log } = options
  const dir = mkdtempSync(join(tmpdir(), 'warren-workers-'))
  // One secret for the agents' resume cookies, whichever worker they reach; never passed in the environment.
  writeFileSync(join(dir, COOKIE_SECRET_FILE), randomBytes(32), { mode: 0o600 })
  const conns = new Set<Socket<Conn>>()
  const readyWaiters = new Map<number, (ok: boolean) => void>()
  /** `members` messages sent so far; publishes waiting for every other worker to apply their round. */
  let round = 0
  const unsynced: { from: Socket<Conn>; seq: number; round: number }[] = []
  const settle = () => {
    for (let i = unsynced.length - 1; i >= 0; i--) {
      const p = unsynced[i]!
      if ([...conns].some((c) => c !== p.from && c.data.member && c.data.applied < p.round)) continue
      unsynced.splice(i, 1)
      if (conns.has(p.from)) p.from.data.out.send({ type: 'synced', seq: p.seq } satisfies FromHub)
    }
  }
  const table = new MemberTable({
    graceMs: options.graceMs,
    onChange() {
      const message: FromHub = { type: 'members', members: table.all(), round: ++round }
      for (const c of conns) if (c.data.member) c.data.out.send(message)
    },
    onLost(member, claim, holder) {
      log.warn('another worker holds this URL; the later agent endpoint is stopped', { url: `${claim.url.scheme}://${claim.url.host}`, tunnel: claim.tunnel, worker: member.split('.')[0], holder: holder.split('.')[0], code: CODES.CLUSTER_URL_TAKEN })
      for (const c of conns) if (c.data.member === member) c.data.out.send({ type: 'lost', claim, holder } satisfies FromHub)
    },
  })
  const acme = new AcmeHub()
  const acmeChanged = () => {
    for (const c of conns) if (c.data.member) c.data.out.send({ type: 'acme-changed' } satisfies FromHub)
  }
  /** Tells each worker whether another one listens to events, when that changed: only then does it send its own. */
  const eventsWanted = () => {
    for (const c of conns) {
      if (!c.data.member) continue
      const on = [...conns].some((o) => o !== c && o.data.listening)
      if (on === c.data.wanted) continue
      c.data.wanted = on
      c.data.out.send({ type: 'events-wanted', on } satisfies FromHub)
    }
  }
  /** Passes one worker's events to the others that listen; a listener whose socket is backed up misses them (its stream's own limit would drop them anyway). */
  const relayEvents = (from: Socket<Conn>, events: Extract<FromHub, { type: 'events' }>) => {
    for (const c of conns) if (c !== from && c.data.listening && c.data.out.queued <= EVENTS_QUEUE_BYTES) c.data.out.send(events)
  }
  /** Passes a command on to the member holding the session, or its result back to the asker. */
  const route = (from: string, m: Extract<ToHub, { type: 'command' | 'result' }>) => {
    const to = [...conns].find((c) => c.data.member === m.to)
    if (m.type === 'result') return to?.data.out.send({ type: 'result', id: m.id, error: m.error } satisfies FromHub)
    const asker = [...conns].find((c) => c.data.member === from)
    if (to) to.data.out.send({ type: 'command', from, id: m.id, command: m.command } satisfies FromHub)
    else asker?.data.out.send({ type: 'result', id: m.id, error: `worker ${m.to.split('.')[0]} is gone` } satisfies FromHub)
  }
  const hub = Bun.listen<Conn>({
    unix: join(dir, 'control.sock'),
    socket: {
      open(socket) {
        socket.data = { member: undefined, link: '', reader: new FrameReader(), out: frameWriter(socket), listening: false, wanted: false, applied: 0 }
        conns.add(socket)
      },
      data(socket, chunk) {
        let messages: ToHub[]
        try {
          messages = socket.data.reader.push(chunk) as ToHub[]
        } catch {
          return void socket.terminate()
        }
        for (const m of messages) {
          if (m.type === 'hello') {
            socket.data.member = m.member
            socket.data.link = m.link
            socket.data.out.send({ type: 'members', members: table.all(), round } satisfies FromHub)
            eventsWanted()
          } else if (m.type === 'publish' && socket.data.member) {
            table.update(socket.data.member, socket.data.link, m.holdings)
            unsynced.push({ from: socket, seq: m.seq, round })
            settle()
          } else if (m.type === 'applied' && socket.data.member) {
            socket.data.applied = m.round
            settle()
          }
          else if (m.type === 'ready' && socket.data.member) readyWaiters.get(Number(socket.data.member.slice(1).split('.')[0]))?.(true)
          else if ((m.type === 'command' || m.type === 'result') && socket.data.member) route(socket.data.member, m)
          else if (m.type === 'events-listen' && socket.data.member) {
            socket.data.listening = m.on
            eventsWanted()
          } else if (m.type === 'events' && socket.data.member) relayEvents(socket, { type: 'events', events: m.events })
          else if (m.type === 'acme' && socket.data.member) {
            const { value, changed } = acme.handle(socket.data.member, m.op)
            socket.data.out.send({ type: 'acme', id: m.id, value } satisfies FromHub)
            if (changed) acmeChanged()
          }
        }
      },
      drain: (socket) => socket.data.out.drain(),
      close(socket) {
        conns.delete(socket)
        // A worker gone applies nothing more: the others' binds wait for it no longer.
        settle()
        if (socket.data.listening) eventsWanted()
        if (socket.data.member) table.gone(socket.data.member)
        // A worker that died mid-order frees its lock: a waiting worker orders at once.
        if (socket.data.member && acme.gone(socket.data.member)) acmeChanged()
      },
      error: () => {},
    },
  })

  const entry = selfCommand()
  const workers = new Map<number, Subprocess>()
  let stopping = false
  /** Until every worker served once: a worker that exits now has a config or port problem, not bad luck. */
  let booting = true
  const spawn = (n: number, attempt: number): Subprocess => {
    const started = Date.now()
    const proc = Bun.spawn([...entry, 'serve', ...options.args], {
      env: { ...process.env, [WORKER_ENV]: String(n), [CLUSTER_DIR_ENV]: dir },
      stdio: ['ignore', 'inherit', 'inherit'],
    })
    workers.set(n, proc)
    log.info('worker started', { worker: n, pid: proc.pid })
    void proc.exited.then(async (code) => {
      readyWaiters.get(n)?.(false)
      if (stopping || booting) return
      const next = Date.now() - started < STABLE_MS ? attempt + 1 : 0
      const delay = Math.min(RESTART_MIN_MS * 2 ** next, RESTART_MAX_MS)
      log.warn('worker exited; restarting', { worker: n, pid: proc.pid, exit_code: code, signal: proc.signalCode, restart_in_ms: delay, code: CODES.WORKER_EXITED })
      await Bun.sleep(delay)
      if (!stopping) spawn(n, next)
    })
    return proc
  }
  const ready = (n: number) => new Promise<boolean>((resolve) => readyWaiters.set(n, resolve))
  const stop = async (signal: NodeJS.Signals) => {
    stopping = true
    for (const w of workers.values()) w.kill(signal)
    await Promise.all([...workers.values()].map((w) => w.exited))
    hub.stop(true)
    table.clear()
    rmSync(dir, { recursive: true, force: true })
  }

  const first = ready(1)
  spawn(1, 0)
  let ok = await first
  if (ok) {
    const rest = [...Array(options.count - 1).keys()].map((i) => i + 2)
    const others = rest.map((n) => ready(n))
    for (const n of rest) spawn(n, 0)
    ok = (await Promise.all(others)).every(Boolean)
  }
  if (!ok) {
    log.error('a worker failed to start; stopping', { code: CODES.WORKER_EXITED })
    await stop('SIGTERM')
    return 1
  }
  booting = false
  log.info('workers started', { workers: options.count, pids: [...workers.values()].map((p) => p.pid) })

  process.on('SIGHUP', () => {
    for (const w of workers.values()) w.kill('SIGHUP')
  })
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'))
    process.once('SIGTERM', () => resolve('SIGTERM'))
  })
  log.info('stopping workers', { signal })
  // Each worker drains as a single edge does; a second signal is passed on too (cut the drain short).
  const again = () => {
    for (const w of workers.values()) w.kill(signal)
  }
  process.once('SIGINT', again)
  process.once('SIGTERM', again)
  await stop(signal)
  log.info('workers stopped')
  return 0
}
