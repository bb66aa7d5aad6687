import type { Socket } from 'bun'

/**
 * What the relay needs from each side: a Bun socket, or a tunnel stream shaped like one
 * (`write` returns the bytes taken; the owner calls the relay back on drain, end and close).
 */
export interface RelaySide {
  write(data: Uint8Array): number
  end(): void
  pause(): void
  resume(): void
  terminate(): void
}

/** Above this many queued bytes toward one side, the other side stops being read. */
const HIGH_WATER = 1024 * 1024

/** One direction's write queue: what `socket.write` did not take (Bun drops it otherwise). */
class Outbox {
  readonly socket: RelaySide
  #queue: Uint8Array[] = []
  #queued = 0
  #endWhenFlushed = false
  closed = false
  /** Bytes written to this side. */
  bytes = 0

  constructor(socket: RelaySide) {
    this.socket = socket
  }

  /** Writes or queues `chunk`; returns false when the queue is over the high-water mark. */
  push(chunk: Uint8Array): boolean {
    if (this.closed) return true
    this.bytes += chunk.length
    if (this.#queue.length === 0) {
      const n = this.socket.write(chunk)
      if (n === chunk.length) return true
      // Bun gives every socket read its own buffer (a test in src/tunnel/mux.test.ts shows it): a view is safe to keep.
      chunk = chunk.subarray(Math.max(n, 0))
    }
    this.#queue.push(chunk)
    this.#queued += chunk.length
    return this.#queued <= HIGH_WATER
  }

  /** Writes what is queued (on `drain`); returns true once the queue is empty. */
  flush(): boolean {
    while (this.#queue.length) {
      const chunk = this.#queue[0]!
      const n = this.socket.write(chunk)
      if (n < chunk.length) {
        this.#queue[0] = chunk.subarray(Math.max(n, 0))
        this.#queued -= Math.max(n, 0)
        return false
      }
      this.#queue.shift()
      this.#queued -= chunk.length
    }
    if (this.#endWhenFlushed) this.socket.end()
    return true
  }

  /** Half-closes this side once everything queued is written. */
  end(): void {
    if (this.closed) return
    if (this.#queue.length === 0) this.socket.end()
    else this.#endWhenFlushed = true
  }
}

export interface RelayStats {
  /** Bytes from the client to the upstream. */
  bytesIn: number
  /** Bytes from the upstream to the client. */
  bytesOut: number
  startedAt: number
  endedAt: number
}

/**
 * A byte relay between a client and an upstream socket with backpressure both ways: when one side
 * cannot take more, the other stops being read until `drain`. Each socket's handlers call the
 * matching method (`fromClient`, `clientDrained`, `clientClosed`, …).
 */
export class Relay {
  readonly #toUpstream: Outbox
  readonly #toClient: Outbox
  readonly #client: RelaySide
  readonly #upstream: RelaySide
  readonly #onDone: (stats: RelayStats) => void
  readonly #startedAt = Date.now()
  #done = false
  #reaper: ReturnType<typeof setTimeout> | undefined

  constructor(client: RelaySide, upstream: RelaySide, onDone: (stats: RelayStats) => void = () => {}) {
    this.#client = client
    this.#upstream = upstream
    this.#toUpstream = new Outbox(upstream)
    this.#toClient = new Outbox(client)
    this.#onDone = onDone
  }

  /** Passes client bytes on; false when the client was paused because the upstream is behind. */
  fromClient(chunk: Uint8Array): boolean {
    if (this.#toUpstream.push(chunk)) return true
    this.#client.pause()
    return false
  }

  fromUpstream(chunk: Uint8Array): void {
    if (!this.#toClient.push(chunk)) this.#upstream.pause()
  }

  upstreamDrained(): void {
    if (this.#toUpstream.flush()) this.#client.resume()
  }

  clientDrained(): void {
    if (this.#toClient.flush()) this.#upstream.resume()
  }

  /** The client finished sending: pass the half-close on once queued bytes are out. */
  clientEnded(): void {
    this.#toUpstream.end()
  }

  upstreamEnded(): void {
    this.#toClient.end()
  }

  clientClosed(): void {
    this.#toClient.closed = true
    this.#finish(this.#upstream, this.#toUpstream)
  }

  upstreamClosed(): void {
    this.#toUpstream.closed = true
    this.#finish(this.#client, this.#toClient)
  }

  #finish(other: RelaySide, toOther: Outbox): void {
    // Give the surviving side what is already queued for it, then close it.
    toOther.end()
    if (this.#done) {
      // Both sides are closed: drop the safety timer, which would otherwise keep this relay (and its
      // sockets and queues) alive for 30 s after every connection.
      clearTimeout(this.#reaper)
      return
    }
    this.#done = true
    this.#reaper = setTimeout(() => other.terminate(), 30_000)
    this.#reaper.unref?.()
    this.#onDone({ bytesIn: this.#toUpstream.bytes, bytesOut: this.#toClient.bytes, startedAt: this.#startedAt, endedAt: Date.now() })
  }
}

/** What a listener keeps per client connection while it decides and then relays. */
export interface RelayConn {
  relay: Relay | undefined
  /** Client bytes that arrived before the upstream connection opened. */
  early: Uint8Array[]
  earlyBytes: number
  closed: boolean
}

export function newRelayConn(): RelayConn {
  return { relay: undefined, early: [], earlyBytes: 0, closed: false }
}

/** Client-side socket handlers that feed a relay; listeners spread them into their own. */
export const clientRelayHandlers = {
  drain(socket: Socket<RelayConn>) {
    socket.data.relay?.clientDrained()
  },
  end(socket: Socket<RelayConn>) {
    socket.data.relay?.clientEnded()
  },
  close(socket: Socket<RelayConn>) {
    socket.data.closed = true
    socket.data.relay?.clientClosed()
  },
}

/**
 * Passes client bytes on, or keeps them until the upstream is connected (which may take a while:
 * a slow upstream, an agent reconnecting). Past the relay's high-water mark the client is paused,
 * so what a client sends meanwhile is bounded like any queue of the relay.
 */
export function relayClientData(socket: Socket<RelayConn>, chunk: Uint8Array): void {
  const conn = socket.data
  if (conn.relay) return void conn.relay.fromClient(chunk)
  conn.early.push(chunk)
  conn.earlyBytes += chunk.length
  if (conn.earlyBytes > HIGH_WATER) socket.pause()
}

/**
 * Starts relaying between a client socket and an already-open upstream side: sends `first` and any
 * client bytes that arrived meanwhile, then hands the client's events to the relay.
 */
export function attachRelay(
  client: Socket<RelayConn>,
  upstream: RelaySide,
  options: { first?: Uint8Array; onDone?: (stats: RelayStats) => void },
): Relay {
  const relay = new Relay(client, upstream, options.onDone)
  let flowing = true
  if (options.first?.length) flowing = relay.fromClient(options.first)
  for (const chunk of client.data.early) flowing = relay.fromClient(chunk)
  // Paused for holding too much before the upstream opened: read again unless the relay itself is full.
  if (client.data.earlyBytes > HIGH_WATER && flowing) client.resume()
  client.data.early = []
  client.data.earlyBytes = 0
  client.data.relay = relay
  if (client.data.closed) relay.clientClosed()
  return relay
}

/**
 * Connects to `hostname:port` and relays the client through it, starting with `first` (bytes already
 * read, e.g. a peeked ClientHello). Resolves false when the upstream cannot be reached.
 */
export async function relayTo(
  client: Socket<RelayConn>,
  target: { hostname: string; port: number },
  options: {
    first?: Uint8Array
    idleTimeoutSec?: number
    onDone?: (stats: RelayStats) => void
    /** Called with the upstream socket once connected (e.g. to note its local port). */
    onOpen?: (upstream: Socket<undefined>) => void
    /** Sees the upstream's bytes before they are relayed, until it returns true. */
    watchUpstream?: (chunk: Uint8Array) => boolean
    /**
     * Connect with TLS (to one of the edge's own internal servers, so its certificate is not checked:
     * the name only picks which one it presents).
     */
    tls?: { serverName: string; ALPNProtocols?: Buffer }
  },
): Promise<boolean> {
  let relay: Relay | undefined
  let watch = options.watchUpstream
  try {
    await Bun.connect({
      hostname: target.hostname,
      port: target.port,
      ...(options.tls ? { tls: { ...options.tls, rejectUnauthorized: false } } : {}),
      socket: {
        open(upstream) {
          options.onOpen?.(upstream)
          if (options.idleTimeoutSec) upstream.timeout(options.idleTimeoutSec)
          relay = attachRelay(client, upstream, options)
        },
        data: (_s, chunk) => {
          if (watch?.(chunk)) watch = undefined
          relay?.fromUpstream(chunk)
        },
        drain: () => relay?.upstreamDrained(),
        end: () => relay?.upstreamEnded(),
        close: () => relay?.upstreamClosed(),
        timeout: (s) => void s.end(),
        error: () => {},
      },
    })
    return true
  } catch {
    return false
  }
}
