import type { EventBus, Subscriber } from '../events/bus.ts'
import type { WarrenEvent } from '../events/types.ts'

/** Most events in one relayed message: bounds a frame (16 MiB) and a Redis pub/sub message. */
export const RELAY_BATCH_MAX = 500

/** What a relay tells its member: another member listens or not, events arrived, the transport went or came back. */
export interface RelayHandlers {
  /** True while some other member has `/events/stream` clients: only then are this member's events sent. */
  wanted(on: boolean): void
  /** Events another member produced (already carrying its `node` or `worker`). */
  events(batch: readonly WarrenEvent[]): void
  /** False while the transport is away (Redis down): the others' events are missing meanwhile. */
  reachable(ok: boolean): void
}

/**
 * The transport of events between the members of a cluster: the supervisor's control socket for
 * `--workers N` (LocalRegistry), Redis pub/sub for nodes (RedisRegistry). Interest travels first
 * (`listen`), events only towards a member that listens, so a cluster without stream clients sends none.
 */
export interface EventRelay {
  /** This member has stream clients (true) or no longer has (false). */
  listen(on: boolean): void
  /** Sends this member's events to the listening members; false when the transport is backed up or away (they are dropped). */
  send(batch: readonly WarrenEvent[]): boolean
  onRelay(handlers: RelayHandlers): void
  readonly reachable: boolean
}

/**
 * The events of every member for this member's `/events/stream` clients. A client subscribes here
 * instead of on the bus: it gets this member's events from the bus and the others' from the relay.
 * This member's events go out only while another member listens (the relay says so): then one more
 * bus subscriber sends each batch on. Sinks and metrics stay on the bus, per member.
 *
 * @example
 * const cluster = new ClusterEvents(bus, registry)
 * const off = cluster.subscribe((batch) => write(batch))
 */
export class ClusterEvents {
  readonly #bus: EventBus
  readonly #relay: EventRelay
  readonly #clients = new Set<Subscriber>()
  readonly #reach = new Set<(ok: boolean) => void>()
  #publishing: (() => void) | undefined
  #sent = 0
  #received = 0
  #dropped = 0

  constructor(bus: EventBus, relay: EventRelay) {
    this.#bus = bus
    this.#relay = relay
    relay.onRelay({
      wanted: (on) => {
        if (on) this.#publishing ??= bus.subscribe((batch) => this.#send(batch))
        else {
          this.#publishing?.()
          this.#publishing = undefined
        }
      },
      events: (batch) => {
        this.#received += batch.length
        for (const client of [...this.#clients]) {
          try {
            client(batch)
          } catch {
            // A client's own bookkeeping failed; the others still get the batch (as the bus does it).
          }
        }
      },
      reachable: (ok) => {
        for (const listener of [...this.#reach]) listener(ok)
      },
    })
  }

  /** Delivers every member's events to `client` in batches; returns the unsubscribe function. */
  subscribe(client: Subscriber): () => void {
    const offLocal = this.#bus.subscribe(client)
    this.#clients.add(client)
    if (this.#clients.size === 1) this.#relay.listen(true)
    return () => {
      offLocal()
      if (this.#clients.delete(client) && this.#clients.size === 0) this.#relay.listen(false)
    }
  }

  /** False while the others' events cannot arrive (Redis away). */
  get reachable(): boolean {
    return this.#relay.reachable
  }

  /** Runs `listener` when the others' events stop or start arriving; returns the unsubscribe. */
  onReachable(listener: (ok: boolean) => void): () => void {
    this.#reach.add(listener)
    return () => this.#reach.delete(listener)
  }

  /** This member's events sent to the others, the others' events received, and this member's events dropped because the transport was backed up or away. */
  counts(): { sent: number; received: number; dropped: number } {
    return { sent: this.#sent, received: this.#received, dropped: this.#dropped }
  }

  #send(batch: readonly WarrenEvent[]): void {
    if (this.#relay.send(batch)) this.#sent += batch.length
    else this.#dropped += batch.length
  }
}
