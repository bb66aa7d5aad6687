import type { Socket } from 'bun'
import type { WarrenEvent } from '../events/types.ts'
import type { AcmeHubClient, AcmeOp } from './acme-hub.ts'
import { RELAY_BATCH_MAX, type EventRelay, type RelayHandlers } from './event-relay.ts'
import { FrameReader, frameWriter } from './frames.ts'
import type { ClusterRegistry, EndpointClaim, MemberHoldings, MemberState, SessionCommand } from './registry.ts'

/** Worker → supervisor: who I am (`hello`, first), what I hold (`publish`), that I serve traffic (`ready`). */
export type ToHub =
  | { type: 'hello'; member: string; link: string }
  /** `seq` counts this worker's publishes: the hub answers `synced` once every worker applied it. */
  | { type: 'publish'; holdings: MemberHoldings; seq: number }
  /** This worker applied the hub's `members` message of that round. */
  | { type: 'applied'; round: number }
  | { type: 'ready' }
  /** A command for `to`'s session, or (`result`) the answer to one `to` sent; the hub passes both on. */
  | { type: 'command'; to: string; id: number; command: SessionCommand }
  | { type: 'result'; to: string; id: number; error: string }
  /** An operation on the shared ACME state (tls.mode acme), answered by `id`. */
  | { type: 'acme'; id: number; op: AcmeOp }
  /** This worker has `/events/stream` clients (or no longer has), and its events for the workers that do. */
  | { type: 'events-listen'; on: boolean }
  | { type: 'events'; events: readonly WarrenEvent[] }
/** Supervisor → worker: every member's holdings after each change; commands and results passed on. */
export type FromHub =
  /** `round` counts the hub's `members` messages; each worker answers `applied` with it. */
  | { type: 'members'; members: MemberState[]; round: number }
  /** Every other worker applied this worker's publish `seq`. */
  | { type: 'synced'; seq: number }
  | { type: 'command'; from: string; id: number; command: SessionCommand }
  | { type: 'result'; id: number; error: string }
  | { type: 'acme'; id: number; value: unknown }
  /** A worker stored a certificate, or one that held an order lock is gone: look again. */
  | { type: 'acme-changed' }
  /** A non-pooled URL this worker published is held by another worker for another agent: stop it here. */
  | { type: 'lost'; claim: EndpointClaim; holder: string }
  /** Whether another worker has `/events/stream` clients (sent when that changes), and their events. */
  | { type: 'events-wanted'; on: boolean }
  | { type: 'events'; events: readonly WarrenEvent[] }

/** How long a command waits for the holder's answer (the API's own timeout is shorter). */
const COMMAND_TIMEOUT_MS = 15_000
/**
 * Bytes waiting on a control socket beyond which events are dropped (and counted) rather than
 * queued: a stalled peer must not make the sender hold events without bound.
 */
export const EVENTS_QUEUE_BYTES = 4 * 1024 * 1024

/**
 * The registry of `warren serve --workers N` on one machine: the supervisor keeps every worker's
 * holdings (src/cluster/members.ts) and each worker talks to it over a unix socket. Works without
 * Redis; the lease of a worker's entries is its connection to the supervisor.
 */
export class LocalRegistry implements ClusterRegistry, AcmeHubClient, EventRelay {
  readonly self: string
  readonly #socket: Socket<undefined>
  readonly #out: ReturnType<typeof frameWriter>
  #others: MemberState[] = []
  #last = ''
  #closing = false
  #nextId = 0
  readonly #pending = new Map<number, (error: string) => void>()
  #handler: (command: SessionCommand) => Promise<string> = async () => 'this worker runs no commands'
  readonly #listeners = new Set<() => void>()
  readonly #acmePending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>()
  readonly #acmeListeners = new Set<() => void>()
  #lost: (claim: EndpointClaim, holder: string) => void = () => {}
  #relay: RelayHandlers | undefined
  /** The supervisor's last word on whether another worker listens (it may come before `onRelay`). */
  #wanted = false
  /** This worker's last publish, and the last one every other worker applied. */
  #published = 0
  #synced = 0
  readonly #syncWaiters = new Set<{ seq: number; done: () => void }>()

  private constructor(self: string, socket: Socket<undefined>) {
    this.self = self
    this.#socket = socket
    this.#out = frameWriter(socket)
  }

  /**
   * Connects to the supervisor at `path`. `lost` runs when the supervisor goes away (the worker then
   * drains and exits: a worker nobody restarts or coordinates must not keep serving alone).
   */
  static async join(path: string, options: { member: string; link: string; lost: () => void }): Promise<LocalRegistry> {
    const reader = new FrameReader()
    let registry: LocalRegistry | undefined
    const socket = await Bun.connect<undefined>({
      unix: path,
      socket: {
        data(_socket, chunk) {
          for (const message of reader.push(chunk) as FromHub[]) if (registry) registry.#dispatch(message)
        },
        drain: () => registry && registry.#out.drain(),
        close() {
          if (registry) registry.#failAcme()
          if (!registry?.closing) options.lost()
        },
        error: () => {},
      },
    })
    registry = new LocalRegistry(options.member, socket)
    registry.#send({ type: 'hello', member: options.member, link: options.link })
    return registry
  }

  publish(holdings: MemberHoldings): void {
    const text = JSON.stringify(holdings)
    // Every worker republishes when the table changes, including after others' changes: only real changes travel.
    if (text === this.#last) return
    this.#last = text
    this.#send({ type: 'publish', holdings, seq: ++this.#published })
  }

  /**
   * Resolves once every other worker applied what this worker published so far, or after
   * `timeoutMs` (a worker that stalls must not hold the agents' binds).
   */
  synced(timeoutMs: number): Promise<void> {
    if (this.#synced >= this.#published) return Promise.resolve()
    return new Promise<void>((resolve) => {
      const waiter = {
        seq: this.#published,
        done: () => {
          clearTimeout(timer)
          this.#syncWaiters.delete(waiter)
          resolve()
        },
      }
      const timer = setTimeout(waiter.done, timeoutMs)
      this.#syncWaiters.add(waiter)
    })
  }

  /** This worker serves traffic: the supervisor may start the next one. */
  ready(): void {
    this.#send({ type: 'ready' })
  }

  others(): readonly MemberState[] {
    return this.#others
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Leaving on purpose (shutdown): the connection's end is not a lost supervisor. */
  get closing(): boolean {
    return this.#closing
  }

  close(): void {
    this.#closing = true
    this.#socket.end()
  }

  command(member: string, command: SessionCommand): Promise<string> {
    const id = ++this.#nextId
    return new Promise<string>((resolve) => {
      const timer = setTimeout(() => this.#pending.get(id)?.(`worker ${member.split('.')[0]} did not answer`), COMMAND_TIMEOUT_MS)
      this.#pending.set(id, (error) => {
        clearTimeout(timer)
        this.#pending.delete(id)
        resolve(error)
      })
      this.#send({ type: 'command', to: member, id, command })
    })
  }

  onCommand(handler: (command: SessionCommand) => Promise<string>): void {
    this.#handler = handler
  }

  /** Called when a non-pooled URL this worker published is held by another worker for another agent. */
  onLost(handler: (claim: EndpointClaim, holder: string) => void): void {
    this.#lost = handler
  }

  /** Runs an operation on the ACME state the supervisor keeps for the workers. */
  acme(op: AcmeOp): Promise<unknown> {
    if (this.#closing) return Promise.reject(new Error('this worker is leaving'))
    const id = ++this.#nextId
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => settle(undefined, new Error('the supervisor did not answer')), COMMAND_TIMEOUT_MS)
      const settle = (value: unknown, err?: Error) => {
        clearTimeout(timer)
        this.#acmePending.delete(id)
        if (err) reject(err)
        else resolve(value)
      }
      this.#acmePending.set(id, { resolve: (value) => settle(value), reject: (err) => settle(undefined, err) })
      this.#send({ type: 'acme', id, op })
    })
  }

  onAcmeChange(listener: () => void): void {
    this.#acmeListeners.add(listener)
  }

  /** The supervisor is the transport: while this worker runs, it is there. */
  readonly reachable = true

  listen(on: boolean): void {
    this.#send({ type: 'events-listen', on })
  }

  send(batch: readonly WarrenEvent[]): boolean {
    if (this.#out.queued > EVENTS_QUEUE_BYTES) return false
    for (let i = 0; i < batch.length; i += RELAY_BATCH_MAX) this.#send({ type: 'events', events: batch.slice(i, i + RELAY_BATCH_MAX) })
    return true
  }

  onRelay(handlers: RelayHandlers): void {
    this.#relay = handlers
    if (this.#wanted) handlers.wanted(true)
  }

  #failAcme(): void {
    for (const p of [...this.#acmePending.values()]) p.reject(new Error('the supervisor is gone'))
  }

  #dispatch(message: FromHub): void {
    if (message.type === 'members') {
      this.#receive(message.members)
      return this.#send({ type: 'applied', round: message.round })
    }
    if (message.type === 'synced') {
      this.#synced = Math.max(this.#synced, message.seq)
      for (const w of [...this.#syncWaiters]) if (w.seq <= message.seq) w.done()
      return
    }
    if (message.type === 'result') return void this.#pending.get(message.id)?.(message.error)
    if (message.type === 'acme') return void this.#acmePending.get(message.id)?.resolve(message.value)
    if (message.type === 'lost') return this.#lost(message.claim, message.holder)
    if (message.type === 'events-wanted') {
      this.#wanted = message.on
      return this.#relay?.wanted(message.on)
    }
    if (message.type === 'events') return this.#relay?.events(message.events)
    if (message.type === 'acme-changed') {
      for (const listener of this.#acmeListeners) listener()
      return
    }
    void this.#handler(message.command).then(
      (error) => this.#send({ type: 'result', to: message.from, id: message.id, error }),
      (err) => this.#send({ type: 'result', to: message.from, id: message.id, error: err instanceof Error ? err.message : String(err) }),
    )
  }

  #receive(members: MemberState[]): void {
    this.#others = members.filter((m) => m.member !== this.self)
    for (const listener of this.#listeners) listener()
  }

  #send(message: ToHub): void {
    this.#out.send(message)
  }
}
