import type { Socket, SocketHandler, SocketListener, TCPSocketListener } from 'bun'
import { timingSafeEqual } from 'node:crypto'
import { rmSync } from 'node:fs'
import { splitAddress } from '../config/server.ts'
import type { TunnelStream } from '../endpoints/endpoint.ts'
import { Relay } from '../proxy/tcp-relay.ts'
import { feedRelayFromStream } from '../proxy/tunnel-relay.ts'
import { MuxSession, MuxStream, spliceStreams, type StreamCloseCause } from '../tunnel/mux.ts'
import { MuxError } from '../tunnel/proto/frame.ts'
import { encodeFrame, FrameReader } from './frames.ts'
import type { ClusterRegistry } from './registry.ts'

/**
 * The link between members: a unix socket per worker, a TLS port per node. A member dials each other
 * member once and keeps that connection: after one hello frame (the cluster's secret between nodes)
 * it carries a muxado session, the framing agents' sessions use. A connection for an agent endpoint
 * another member holds is one stream of it: one frame naming the tunnel, one byte back (1: the agent
 * took the stream, 0: it could not), then raw bytes, which the holder splices into the agent's stream
 * (`spliceStreams`: each DATA frame's bytes written to the other stream, the windows as backpressure).
 * One connection rather than one per stream because every write on a socket is a syscall (and on the
 * TLS link an encrypted record): a session writes what all its streams sent in a turn at once, as an
 * agent's session does (one connection per stream made the cross-node hop cost 2.2x a same-node
 * request's server CPU; docs/benchmarks.md, cluster hop).
 */
export interface LinkRequest {
  account: string
  tunnel: string
  /** The client address the agent sees in its proxy header. */
  client: string
  wait: boolean
}

/**
 * The first frame on a link connection. `v` is this framing's version: a connection from a member
 * that speaks another (a node not yet upgraded) is cut. Between nodes it carries the cluster's secret
 * (base64url), which the listener compares in constant time.
 */
interface LinkHello {
  v: number
  secret?: string
}
const LINK_VERSION = 2

/**
 * Where a link listens: a unix socket path (workers: the socket's directory is private to the user),
 * or a TCP port with TLS (nodes: the cluster's certificate; a connection that does not show the
 * cluster's secret in its hello is refused).
 */
export type LinkListen = string | { hostname: string; port: number; tls: { cert: string; key: string }; secret: Uint8Array }

const ACCEPTED = Uint8Array.of(1)
const REFUSED = Uint8Array.of(0)
/** Streams one link connection may carry at once; pooled HTTP streams and tcp connections of every client. */
const MAX_LINK_STREAMS = 1 << 16

interface LinkConn {
  hello: FrameReader | undefined
  session: MuxSession | undefined
}

/**
 * Serves the link: `open` finds the local agent tunnel and opens a proxy stream on it. `refused`
 * hears of a connection that did not show the secret (a node's link only) or spoke another version
 * of the link (a member not yet upgraded; its first frame is not a hello). `active` counts the
 * streams other members have open on it (in flight, for the drain).
 */
export function serveLink(
  at: LinkListen,
  open: (request: LinkRequest) => Promise<TunnelStream | undefined>,
  options: { refused?: (remote: string, why: 'secret' | 'version') => void } = {},
): { readonly active: number; readonly port: number; stop(): void } {
  if (typeof at === 'string') rmSync(at, { force: true })
  const secret = typeof at === 'string' ? undefined : at.secret
  let active = 0
  function accept(link: MuxStream): void {
    active++
    const reader = new FrameReader()
    const early: Uint8Array[] = []
    let relay: Relay | undefined
    link.onclose = () => {
      active--
      relay?.clientClosed()
    }
    link.ondata = (chunk) => {
      let request: LinkRequest | undefined
      try {
        request = reader.push(chunk, 1)[0] as LinkRequest | undefined
      } catch {
        return link.terminate()
      }
      if (!request) return
      // Client bytes sent behind the request wait for the agent's stream; the stream's window bounds them.
      link.pause()
      link.ondata = (more) => void early.push(more.slice())
      const rest = reader.rest()
      if (rest.length) early.push(rest)
      void open(request).then(
        (stream) => (relay = attach(link, stream, early)),
        () => attach(link, undefined, early),
      )
    }
  }
  const socket: SocketHandler<LinkConn> = {
    open(socket) {
      socket.data = { hello: new FrameReader(), session: undefined }
    },
    data(socket, chunk) {
      const conn = socket.data
      if (conn.session) return conn.session.feed(chunk)
      let hello: LinkHello | undefined
      try {
        hello = conn.hello!.push(chunk, 1)[0] as LinkHello | undefined
      } catch {
        return void socket.terminate()
      }
      if (!hello) return
      if (hello.v !== LINK_VERSION) {
        options.refused?.(socket.remoteAddress, 'version')
        return void socket.terminate()
      }
      if (secret && !sameSecret(secret, hello.secret)) {
        options.refused?.(socket.remoteAddress, 'secret')
        return void socket.terminate()
      }
      const rest = conn.hello!.rest()
      conn.hello = undefined
      // The dialer opens the streams (even ids, as an edge does); this side only accepts them.
      conn.session = new MuxSession(socket, { onStream: accept, onClose: () => {} }, { role: 'client', limits: { maxRemoteStreams: MAX_LINK_STREAMS } })
      if (rest.length) conn.session.feed(rest)
    },
    drain: (socket) => socket.data.session?.drain(),
    close: (socket) => socket.data.session?.transportClosed(),
    error: () => {},
  }
  const listener: SocketListener<LinkConn> =
    typeof at === 'string'
      ? Bun.listen<LinkConn>({ unix: at, socket })
      : Bun.listen<LinkConn>({ hostname: at.hostname, port: at.port, tls: at.tls, socket })
  return {
    get active() {
      return active
    },
    get port() {
      return typeof at === 'string' ? 0 : (listener as TCPSocketListener<LinkConn>).port
    },
    stop() {
      listener.stop(true)
      if (typeof at === 'string') rmSync(at, { force: true })
    },
  }
}

function sameSecret(secret: Uint8Array, shown: string | undefined): boolean {
  const given = Buffer.from(typeof shown === 'string' ? shown : '', 'base64url')
  return given.length === secret.length && timingSafeEqual(given, secret)
}

/**
 * Answers the dialer and joins its link stream to the agent's stream. An agent's muxado stream is
 * spliced (its frames' data written straight into the link stream and back, the streams' windows as
 * the backpressure: nothing here reads HTTP, the endpoint's policy ran on the member the client
 * reached); another kind of stream (an SSH session's channel) goes through the byte relay.
 */
function attach(link: MuxStream, stream: TunnelStream | undefined, early: Uint8Array[]): Relay | undefined {
  if (!stream || link.closed) {
    stream?.terminate()
    link.writeHeader(REFUSED)
    link.end()
    return undefined
  }
  // Sent whole even while the session is congested: the dialer waits for it.
  link.writeHeader(ACCEPTED)
  if (stream instanceof MuxStream) {
    // A close of the link stream resets the agent's stream through the splice: no relay to tell.
    if (spliceStreams(link, stream, early).pending === 0) link.resume()
    return undefined
  }
  const relay = new Relay(link, stream)
  link.ondata = (chunk) => void relay.fromClient(chunk)
  link.ondrain = () => relay.clientDrained()
  link.onend = () => relay.clientEnded()
  feedRelayFromStream(relay, stream)
  let flowing = true
  for (const chunk of early) flowing = relay.fromClient(chunk)
  if (flowing) link.resume()
  return relay
}

/** Opens proxy streams to the agents other members hold, over one link connection per member. */
export interface LinkDialer {
  /**
   * Opens a proxy stream to an agent held by the member whose link listens at `to` (a unix socket
   * path, or `host:port` of a node). Undefined when that member is gone or its agent could not take
   * the stream.
   */
  dial(to: string, request: LinkRequest): Promise<TunnelStream | undefined>
  /**
   * Closes the connections to members not in `live` (the registry's live members' link addresses):
   * a member whose machine vanished never closes its end, and a kept connection to it would take
   * new streams that nobody answers.
   */
  keep(live: ReadonlySet<string>): void
  /** Closes every link connection (the streams on them close). */
  close(): void
}

/** Keeps a dialer's connections to the live members of `registry` only (see `LinkDialer.keep`); returns the unsubscribe. */
export function keepLiveLinks(dialer: LinkDialer, registry: Pick<ClusterRegistry, 'others' | 'onChange'>): () => void {
  return registry.onChange(() => dialer.keep(new Set(registry.others().flatMap((m) => (m.alive ? [m.link] : [])))))
}

/**
 * A dialer of unix-socket links (workers), or with `tls` and `secret` of a node's TLS link, checked
 * against the cluster's CA and name.
 */
export function linkDialer(options: { tls?: { ca: string; serverName: string }; secret?: Uint8Array } = {}): LinkDialer {
  const hello = encodeFrame({ v: LINK_VERSION, ...(options.secret ? { secret: Buffer.from(options.secret).toString('base64url') } : {}) } satisfies LinkHello)
  /** One connection per member; a closed one is replaced on the next dial. */
  const sessions = new Map<string, Promise<MuxSession | undefined>>()
  let closed = false

  async function connect(to: string): Promise<MuxSession | undefined> {
    let session: MuxSession | undefined
    let opened: (session: MuxSession | undefined) => void = () => {}
    // A TLS socket may open after Bun.connect resolved; one whose certificate is refused closes.
    const ready = new Promise<MuxSession | undefined>((resolve) => (opened = resolve))
    const socket: SocketHandler<undefined> = {
      open(socket) {
        socket.write(hello)
        // This side opens the streams; one the holder opened would be a protocol error: refused.
        session = new MuxSession(socket, { onStream: (s) => s.terminate(), onClose: () => {} }, { role: 'server', maxLocalStreams: MAX_LINK_STREAMS })
        opened(session)
      },
      data: (_socket, chunk) => session?.feed(chunk),
      drain: () => session?.drain(),
      close() {
        session?.transportClosed()
        opened(undefined)
      },
      // No `handshake` handler: with one, Bun drops what `open` wrote before the handshake ended (1.4.5).
      connectError: () => opened(undefined),
      error: () => {},
    }
    try {
      if (options.tls) await Bun.connect<undefined>({ ...splitAddress(to), tls: { ...options.tls, rejectUnauthorized: true }, socket })
      else await Bun.connect<undefined>({ unix: to, socket })
    } catch {
      return undefined
    }
    const got = await ready
    return got?.closed ? undefined : got
  }

  function session(to: string): Promise<MuxSession | undefined> {
    const known = sessions.get(to)
    if (!known) return reconnect(to, undefined)
    return known.then((s) => (s && !s.closed ? s : reconnect(to, known)))
  }

  function reconnect(to: string, stale: Promise<MuxSession | undefined> | undefined): Promise<MuxSession | undefined> {
    const current = sessions.get(to)
    // Another dial replaced it meanwhile: share that connection.
    if (current !== stale) return current!
    const fresh = connect(to).then((s) => {
      if (!s && sessions.get(to) === fresh) sessions.delete(to)
      return s
    })
    sessions.set(to, fresh)
    return fresh
  }

  return {
    async dial(to, request) {
      if (closed) return undefined
      const mux = (await session(to))?.open()
      if (!mux) return undefined
      const stream = new LinkStream(mux)
      let answered: (ok: boolean) => void = () => {}
      const answer = new Promise<boolean>((resolve) => (answered = resolve))
      mux.ondata = (chunk) => {
        if (stream.state === 'waiting') {
          stream.state = chunk[0] === 1 ? 'open' : 'refused'
          answered(stream.state === 'open')
          chunk = chunk.subarray(1)
        }
        if (chunk.length && stream.state === 'open') stream.data(chunk)
      }
      mux.ondrain = () => stream.emit(() => stream.ondrain())
      mux.onend = () => stream.emit(() => stream.onend())
      mux.onclose = () => {
        answered(false)
        stream.emit(() => stream.onclose())
      }
      mux.writeHeader(encodeFrame(request))
      return (await answer) ? stream : undefined
    },
    keep(live) {
      for (const [to, pending] of sessions) {
        if (live.has(to)) continue
        sessions.delete(to)
        void pending.then((s) => s?.abort(MuxError.NONE, 'member gone'))
      }
    },
    close() {
      closed = true
      for (const pending of sessions.values()) void pending.then((s) => s?.goAway(MuxError.NONE, 'member leaving'))
      sessions.clear()
    },
  }
}

/**
 * A proxy stream over the link, as the consumer (the HTTP pool, a tcp relay) sees it. Events that
 * arrive before the consumer set `ondata` (bytes right behind the answer, an early end) wait for it,
 * so none are lost.
 */
class LinkStream implements TunnelStream {
  readonly #mux: MuxStream
  state: 'waiting' | 'open' | 'refused' = 'waiting'
  onend = () => {}
  ondrain = () => {}
  onclose = () => {}
  #ondata: (chunk: Uint8Array) => void = () => {}
  #held: (() => void)[] | undefined = []

  constructor(mux: MuxStream) {
    this.#mux = mux
  }

  get ondata(): (chunk: Uint8Array) => void {
    return this.#ondata
  }

  set ondata(fn: (chunk: Uint8Array) => void) {
    this.#ondata = fn
    const held = this.#held
    this.#held = undefined
    // The consumer sets its other handlers right after this one: deliver once it has.
    if (held?.length) queueMicrotask(() => held.forEach((e) => e()))
  }

  emit(event: () => void): void {
    if (this.#held) this.#held.push(event)
    else event()
  }

  data(chunk: Uint8Array): void {
    if (!this.#held) return this.#ondata(chunk)
    // The session's read buffer is only ours during the callback.
    const copy = chunk.slice()
    this.#held.push(() => this.#ondata(copy))
  }

  get closed(): boolean {
    return this.#mux.closed
  }

  get closeCause(): StreamCloseCause | undefined {
    return this.#mux.closeCause
  }

  get resetCode(): number | undefined {
    return this.#mux.resetCode
  }

  write(chunk: Uint8Array): number {
    return this.#mux.write(chunk)
  }

  end(): void {
    this.#mux.end()
  }

  terminate(code?: number): void {
    this.#mux.terminate(code)
  }

  pause(): void {
    this.#mux.pause()
  }

  resume(): void {
    this.#mux.resume()
  }
}
