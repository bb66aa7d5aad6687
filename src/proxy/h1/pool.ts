import type { Socket, SocketHandler } from 'bun'

/** What a connection writes to: a Bun socket, or anything shaped like one (a tunnel stream). */
export interface H1Socket {
  write(data: Uint8Array): number
  pause(): void
  resume(): void
  end(): void
  terminate(): void
  /** Idle timeout in seconds (0 = none); on expiry the transport calls `handleTimeout`. */
  timeout(seconds: number): void
  /**
   * Why the transport closed, when it can tell (agent tunnels): `refused` means the peer declined
   * the stream without reading it, so nothing sent on it reached an upstream.
   */
  closeReason?(): H1CloseReason | undefined
  /**
   * The transport gathers writes itself and sends them at the end of the event-loop turn (a tunnel
   * stream: its session writes one batch per turn), so `writeSoon` writes at once instead of corking
   * (a cork's turn-end callback that writes into the session's own turn-end batch schedules that
   * batch for the next loop iteration, one more turn per request).
   */
  readonly batches?: boolean
}

/** What a transport knows about its own end; see `H1Socket.closeReason`. */
export type H1CloseReason = 'refused' | 'reset' | 'session closed'

/** Where a connection goes: `key` groups connections that may carry each other's requests. */
export interface H1Origin {
  hostname: string
  port: number
  /** `hostname:port`, the pool key. */
  key: string
  /**
   * Opens the transport instead of a TCP connection to hostname:port (agent tunnels). It must call
   * the connection's handleData/handleDrain/handleClose/handleTimeout as a socket's handlers would.
   */
  dial?: (conn: H1Connection) => Promise<H1Socket>
}

/** Receives what happens on a connection while it carries one exchange. */
export interface ConnectionSink {
  onData(buf: Buffer): void
  /** The upstream closed (EOF when `error` is undefined) or the socket failed. Called at most once. */
  onClose(error: Error | undefined): void
}

export interface H1PoolOptions {
  /** Idle connections kept per origin; more are closed on release. */
  maxIdlePerOrigin?: number
  /** Seconds an idle connection waits for its next request before the pool closes it. */
  idleTimeoutSec?: number
}

/** Connections with a `writeSoon` queued this turn. */
const corked: H1Connection[] = []

function uncorkAll(): void {
  // Connections corked while flushing (from a resolved drain) wait for the next turn.
  const batch = corked.splice(0)
  for (const conn of batch) conn.uncork()
}

/**
 * One upstream TCP connection. Writes never lose bytes: what the kernel does not accept is queued
 * and written on `drain` (Bun's `socket.write` drops whatever it does not accept).
 */
export class H1Connection {
  readonly origin: H1Origin
  socket: H1Socket | undefined
  /** The exchange reading this connection; null while idle. */
  sink: ConnectionSink | null = null
  /** Exchanges completed on this connection: above 0 it came from the idle pool. */
  uses = 0
  closed = false
  pendingBytes = 0
  /** Bytes handed to the socket so far (queued bytes count once written). */
  written = 0
  readonly #pool: H1Pool
  #pending: Uint8Array[] = []
  #drained: (() => void) | null = null
  #paused = false
  #corked = false

  constructor(pool: H1Pool, origin: H1Origin) {
    this.#pool = pool
    this.origin = origin
  }

  /**
   * Queues `chunk` to be written with every other connection's at the end of this event-loop
   * turn. Requests that arrive together then reach the upstream together, instead of each write
   * waking it (and, on a shared core, switching to it) on its own. Later `write`s queue behind it.
   */
  writeSoon(chunk: Uint8Array): void {
    if (this.closed || !this.socket) return
    if (this.socket.batches) return void this.write(chunk)
    this.#pending.push(chunk)
    this.pendingBytes += chunk.length
    if (this.#corked) return
    this.#corked = true
    corked.push(this)
    if (corked.length === 1) setImmediate(uncorkAll)
  }

  /** Called once per turn for a `writeSoon` connection. */
  uncork(): void {
    this.#corked = false
    if (!this.closed) this.handleDrain()
  }

  /** Writes or queues `chunk`; true when the kernel took all of it and nothing is queued. */
  write(chunk: Uint8Array): boolean {
    if (this.closed || !this.socket) return false
    if (this.pendingBytes === 0) {
      const n = this.socket.write(chunk)
      if (n > 0) this.written += n
      if (n === chunk.length) return true
      if (n > 0) chunk = chunk.subarray(n)
    }
    this.#pending.push(chunk)
    this.pendingBytes += chunk.length
    return false
  }

  /** Resolves once the write queue is empty or the connection closed. */
  whenDrained(): Promise<void> {
    if (this.pendingBytes === 0 || this.closed) return Promise.resolve()
    return new Promise((resolve) => {
      const prior = this.#drained
      this.#drained = prior
        ? () => {
            prior()
            resolve()
          }
        : resolve
    })
  }

  pause(): void {
    if (this.#paused || this.closed) return
    this.#paused = true
    this.socket?.pause()
  }

  resume(): void {
    if (!this.#paused || this.closed) return
    this.#paused = false
    this.socket?.resume()
  }

  /** Closes without telling the sink: the caller already knows. `abort` resets instead of FIN. */
  destroy(abort = true): void {
    if (this.closed) return
    this.#closed()
    this.sink = null
    if (abort) this.socket?.terminate()
    else this.socket?.end()
  }

  handleData(buf: Buffer): void {
    const sink = this.sink
    if (sink) sink.onData(buf)
    // Bytes on an idle connection belong to no request: the connection is out of step.
    else this.destroy()
  }

  handleDrain(): void {
    const socket = this.socket
    if (!socket) return
    while (this.#pending.length) {
      const chunk = this.#pending[0]!
      const n = socket.write(chunk)
      if (n > 0) this.written += n
      if (n < chunk.length) {
        if (n > 0) {
          this.#pending[0] = chunk.subarray(n)
          this.pendingBytes -= n
        }
        return
      }
      this.#pending.shift()
      this.pendingBytes -= chunk.length
    }
    this.#wake()
  }

  handleClose(error: Error | undefined): void {
    if (this.closed) return
    this.#closed()
    const sink = this.sink
    this.sink = null
    sink?.onClose(error)
  }

  handleTimeout(): void {
    if (!this.sink) this.destroy(false)
  }

  #closed(): void {
    this.closed = true
    this.#pending = []
    this.pendingBytes = 0
    this.#wake()
    if (!this.sink) this.#pool.forget(this)
  }

  #wake(): void {
    const drained = this.#drained
    this.#drained = null
    drained?.()
  }
}

const HANDLERS: SocketHandler<H1Connection> = {
  data(socket, data) {
    socket.data.handleData(data)
  },
  drain(socket) {
    socket.data.handleDrain()
  },
  end(socket) {
    socket.data.handleClose(undefined)
  },
  close(socket, error) {
    socket.data.handleClose(error)
  },
  error(socket, error) {
    socket.data.handleClose(error)
    socket.terminate()
  },
  timeout(socket) {
    socket.data.handleTimeout()
  },
  // Present so a refused connect only rejects the promise `connect` awaits.
  connectError() {},
}

/**
 * Keep-alive connections per origin. Idle connections are reused newest first (LIFO), so a burst's
 * extra connections go cold and time out, and each is watched for the upstream closing it.
 *
 * @example
 * ```ts
 * const pool = new H1Pool({ maxIdlePerOrigin: 256 })
 * const conn = pool.take(origin) ?? (await pool.connect(origin))
 * // … one exchange …
 * pool.release(conn)
 * ```
 */
export class H1Pool {
  readonly #idle = new Map<string, H1Connection[]>()
  readonly #maxIdle: number
  readonly #idleTimeoutSec: number
  #closed = false
  /** Connections opened so far (for tests and stats). */
  opened = 0

  constructor(options: H1PoolOptions = {}) {
    this.#maxIdle = options.maxIdlePerOrigin ?? 256
    this.#idleTimeoutSec = options.idleTimeoutSec ?? 4
  }

  /** The most recently released open connection to `origin`, if any. */
  take(origin: H1Origin): H1Connection | undefined {
    const stack = this.#idle.get(origin.key)
    if (!stack) return undefined
    for (;;) {
      const conn = stack.pop()
      if (!conn) return undefined
      // Its idle timeout stays armed: one firing while the connection carries an exchange is ignored
      // (handleTimeout), and release arms it again; a native call per request saved.
      if (conn.closed) continue
      return conn
    }
  }

  /** Opens a new connection; rejects with the socket error (e.g. ECONNREFUSED). */
  async connect(origin: H1Origin): Promise<H1Connection> {
    const conn = new H1Connection(this, origin)
    if (origin.dial) conn.socket = await origin.dial(conn)
    else {
      const socket = await Bun.connect<H1Connection>({
        hostname: origin.hostname,
        port: origin.port,
        socket: HANDLERS,
        data: conn,
      })
      socket.setNoDelay(true)
      conn.socket = socket
    }
    this.opened++
    return conn
  }

  /** Returns a connection whose last exchange ended cleanly; it is closed when the pool is full. */
  release(conn: H1Connection): void {
    conn.sink = null
    if (conn.closed) return
    let stack = this.#idle.get(conn.origin.key)
    if (!stack) this.#idle.set(conn.origin.key, (stack = []))
    if (this.#closed || stack.length >= this.#maxIdle) {
      conn.destroy(false)
      return
    }
    conn.resume()
    conn.socket?.timeout(this.#idleTimeoutSec)
    stack.push(conn)
  }

  /** Drops a closed connection from the idle stacks. */
  forget(conn: H1Connection): void {
    const stack = this.#idle.get(conn.origin.key)
    if (!stack) return
    const i = stack.lastIndexOf(conn)
    if (i !== -1) stack.splice(i, 1)
  }

  /** Idle connections per origin key (for tests and stats). */
  idleCount(key: string): number {
    return this.#idle.get(key)?.length ?? 0
  }

  /** Closes every idle connection; connections in use close when their exchange ends. */
  close(): void {
    this.#closed = true
    for (const stack of this.#idle.values()) for (const conn of stack.splice(0)) conn.destroy(false)
    this.#idle.clear()
  }
}

/** The connect address of an `http://` URL, e.g. `http://[::1]:8080` → `::1`, 8080. */
export function originOf(url: URL): H1Origin {
  const host = url.hostname
  const hostname = host.startsWith('[') ? host.slice(1, -1) : host
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80
  return { hostname, port, key: `${host}:${port}` }
}

let shared: H1Pool | undefined

/** The process-wide pool the edge's proxy uses; created on first use. */
export function sharedPool(): H1Pool {
  return (shared ??= new H1Pool())
}
