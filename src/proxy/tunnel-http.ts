import type { TunnelStream, TunnelTarget } from '../endpoints/endpoint.ts'
import { MuxError } from '../tunnel/proto/frame.ts'
import type { H1CloseReason, H1Connection, H1Origin, H1Socket } from './h1/pool.ts'

const origins = new WeakMap<TunnelTarget, { waiting: H1Origin; failFast: H1Origin }>()
let nextKey = 0

/**
 * The HTTP/1.1 origin of an agent endpoint: each pooled connection is one proxy stream to the agent
 * (kept alive across requests, like a TCP connection), so the edge's HTTP client and its keep-alive
 * pool work unchanged over tunnels. A stream then carries requests of several clients, so its
 * ClientAddr names the edge (`edgeAddr`); the client of each request is in X-Forwarded-For.
 * With `wait: false` a new stream is not waited for while the agent reconnects (another pool member
 * can take the request); both variants share one key, so they share idle streams.
 */
export function tunnelOrigin(tunnel: TunnelTarget, edgeAddr: string, options: { wait?: boolean } = {}): H1Origin {
  let pair = origins.get(tunnel)
  if (!pair) {
    const key = `tunnel:${++nextKey}`
    pair = {
      waiting: { hostname: 'agent', port: 0, key, dial: (conn) => dialTunnel(tunnel, conn, edgeAddr, true) },
      failFast: { hostname: 'agent', port: 0, key, dial: (conn) => dialTunnel(tunnel, conn, edgeAddr, false) },
    }
    origins.set(tunnel, pair)
  }
  return options.wait === false ? pair.failFast : pair.waiting
}

async function dialTunnel(tunnel: TunnelTarget, conn: H1Connection, clientAddr: string, wait: boolean): Promise<H1Socket> {
  const stream = await tunnel.connect(clientAddr, { wait })
  if (!stream) throw Object.assign(new Error('the agent is offline or busy'), { code: 'ECONNREFUSED' })
  const idle = idleTimer(() => conn.handleTimeout())
  // Frame bodies are mostly Buffers already (views of what the socket read): wrapping one again is not free.
  stream.ondata = (chunk) => conn.handleData(chunk instanceof Buffer ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length))
  stream.ondrain = () => conn.handleDrain()
  // The far side ended its half (the agent's upstream closed, or the member holding the agent let the
  // stream go): the exchange is over, and our half must end too or the stream stays half-open on both
  // sessions for good (a link stream counts as in flight until then).
  stream.onend = () => {
    conn.handleClose(undefined)
    stream.end()
  }
  stream.onclose = ((prev) => () => {
    prev()
    idle.stop()
    conn.handleClose(undefined)
  })(stream.onclose)
  return {
    write: (data) => stream.write(data),
    pause: () => stream.pause(),
    resume: () => stream.resume(),
    // The pool closes a connection only between exchanges (idle, or not kept): a FIN would leave the
    // stream half-open on both sessions until the agent's upstream closed its connection (a link
    // stream counts as in flight meanwhile and holds a drain); a reset frees both ends now.
    end: () => stream.terminate(),
    terminate: () => stream.terminate(),
    timeout: (seconds) => idle.set(seconds),
    closeReason: () => streamCloseReason(stream),
    batches: true,
  }
}

/**
 * The idle timeout of a pooled tunnel stream (`set(0)` clears it). The pool sets it on every release (and
 * leaves it armed on reuse: the connection ignores a firing while it carries an exchange), so a stream
 * carrying back-to-back requests would create and cancel a timer per request (1 % of the edge's
 * samples); this keeps one timer and moves a deadline, re-arming only when the timer fires early or a
 * shorter timeout is asked for.
 */
export function idleTimer(onIdle: () => void): { set(seconds: number): void; stop(): void } {
  let deadline = 0
  let due = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  function arm(at: number): void {
    clearTimeout(timer)
    due = at
    timer = setTimeout(fire, Math.max(0, at - performance.now()))
  }
  function fire(): void {
    timer = undefined
    if (deadline === 0) return
    if (deadline > performance.now()) return arm(deadline)
    deadline = 0
    onIdle()
  }
  return {
    set(seconds) {
      if (seconds <= 0) {
        deadline = 0
        return
      }
      deadline = performance.now() + seconds * 1000
      if (timer === undefined || deadline < due) arm(deadline)
    },
    /** The stream closed: nothing may fire, nor hold the connection until then. */
    stop() {
      deadline = 0
      clearTimeout(timer)
      timer = undefined
    },
  }
}

/** A muxado RST with StreamRefused means the agent declined the stream before reading it (HTTP/2's REFUSED_STREAM). */
export function streamCloseReason(stream: TunnelStream): H1CloseReason | undefined {
  switch (stream.closeCause) {
    case 'reset':
      return stream.resetCode === MuxError.STREAM_REFUSED ? 'refused' : 'reset'
    case 'session':
      return 'session closed'
    default:
      return undefined
  }
}
