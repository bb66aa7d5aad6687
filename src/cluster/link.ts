import type { Socket, SocketHandler, SocketListener, TCPSocketListener } from 'bun'
import { timingSafeEqual } from 'node:crypto'
import { rmSync } from 'node:fs'
import type { TunnelStream } from '../endpoints/endpoint.ts'
import type { StreamCloseCause } from '../tunnel/mux.ts'
import { clientRelayHandlers, newRelayConn, relayClientData, type RelayConn } from '../proxy/tcp-relay.ts'
import { relayThroughStream } from '../proxy/tunnel-relay.ts'
import { encodeFrame, FrameReader } from './frames.ts'

/**
 * The link between members: a unix socket per worker, a TLS port per node. A member that has a
 * connection for an agent endpoint another member holds opens a link connection to that member,
 * sends one frame naming the tunnel, reads one byte (1: the agent took the stream, 0: it could not),
 * then both sides relay raw bytes: the holder between the link connection and the agent's muxado
 * stream, with the same backpressure as any relay (pause the side that is ahead, resume on drain).
 */
export interface LinkRequest {
  account: string
  tunnel: string
  /** The client address the agent sees in its proxy header. */
  client: string
  wait: boolean
  /** Between nodes: the cluster's secret (base64url), which the listener compares in constant time. */
  secret?: string
}

/**
 * Where a link listens: a unix socket path (workers: the socket's directory is private to the user),
 * or a TCP port with TLS (nodes: the cluster's certificate; a connection that does not show the
 * cluster's secret in its first frame is refused).
 */
export type LinkListen = string | { hostname: string; port: number; tls: { cert: string; key: string }; secret: Uint8Array }
/** Where a link is dialled: a unix socket path, or a node's TLS port checked against the cluster's CA. */
export type LinkDial = string | { hostname: string; port: number; tls: { ca: string; serverName: string }; secret: Uint8Array }

const ACCEPTED = Uint8Array.of(1)
const REFUSED = Uint8Array.of(0)

type LinkConn = RelayConn & { reader: FrameReader | undefined }

/**
 * Serves the link: `open` finds the local agent tunnel and opens a proxy stream on it. `refused`
 * hears of a connection that did not show the secret (a node's link only).
 */
export function serveLink(
  at: LinkListen,
  open: (request: LinkRequest) => Promise<TunnelStream | undefined>,
  options: { refused?: (remote: string) => void } = {},
): { readonly active: number; readonly port: number; stop(): void } {
  if (typeof at === 'string') rmSync(at, { force: true })
  const secret = typeof at === 'string' ? undefined : at.secret
  let active = 0
  const socket: SocketHandler<LinkConn> = {
    ...clientRelayHandlers,
    open(socket) {
      active++
      socket.data = { ...newRelayConn(), reader: new FrameReader() }
    },
    close(socket) {
      active--
      clientRelayHandlers.close(socket)
    },
    data(socket, chunk) {
      const reader = socket.data.reader
      if (!reader) return relayClientData(socket, chunk)
      let request: LinkRequest | undefined
      try {
        request = reader.push(chunk, 1)[0] as LinkRequest | undefined
      } catch {
        return void socket.terminate()
      }
      if (!request) return
      if (secret && !sameSecret(secret, request.secret)) {
        options.refused?.(socket.remoteAddress)
        return void socket.terminate()
      }
      delete request.secret
      socket.data.reader = undefined
      const rest = reader.rest()
      if (rest.length) relayClientData(socket, rest)
      void open(request).then(
        (stream) => attach(socket, stream),
        () => attach(socket, undefined),
      )
    },
    error: () => {},
  }
  const listener: SocketListener<LinkConn> =
    typeof at === 'string'
      ? Bun.listen<LinkConn>({ unix: at, allowHalfOpen: true, socket })
      : Bun.listen<LinkConn>({ hostname: at.hostname, port: at.port, tls: at.tls, allowHalfOpen: true, socket })
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

function attach(socket: Socket<LinkConn>, stream: TunnelStream | undefined): void {
  if (!stream || socket.data.closed) {
    stream?.terminate()
    socket.write(REFUSED)
    return void socket.end()
  }
  socket.write(ACCEPTED)
  relayThroughStream(socket, stream, {})
}

/**
 * Opens a proxy stream to an agent held by the member whose link listens at `to`. Undefined when
 * that member is gone or its agent could not take the stream.
 */
export async function dialLink(to: LinkDial, request: LinkRequest): Promise<TunnelStream | undefined> {
  const stream = new LinkStream()
  let answered: (ok: boolean) => void = () => {}
  const answer = new Promise<boolean>((resolve) => (answered = resolve))
  const first = encodeFrame(typeof to === 'string' ? request : { ...request, secret: Buffer.from(to.secret).toString('base64url') })
  const socket: SocketHandler<undefined> = {
      open(socket) {
        stream.socket = socket
        socket.write(first)
      },
      data(_socket, chunk) {
        if (stream.state === 'waiting') {
          stream.state = chunk[0] === 1 ? 'open' : 'refused'
          answered(stream.state === 'open')
          chunk = chunk.subarray(1)
        }
        if (chunk.length && stream.state === 'open') stream.emit(() => stream.ondata(chunk.slice()))
      },
      drain: () => stream.emit(() => stream.ondrain()),
      end: () => stream.emit(() => stream.onend()),
      close() {
        answered(false)
        stream.finish()
      },
      error: () => {},
  }
  try {
    if (typeof to === 'string') await Bun.connect<undefined>({ unix: to, allowHalfOpen: true, socket })
    else await Bun.connect<undefined>({ hostname: to.hostname, port: to.port, tls: { ...to.tls, rejectUnauthorized: true }, allowHalfOpen: true, socket })
  } catch {
    return undefined
  }
  return (await answer) ? stream : undefined
}

/**
 * A proxy stream over a link connection, shaped like a muxado stream. Events that arrive before the
 * consumer set `ondata` (bytes right behind the answer) wait for it, so none are lost.
 */
class LinkStream implements TunnelStream {
  socket: Socket<undefined> | undefined
  state: 'waiting' | 'open' | 'refused' = 'waiting'
  onend = () => {}
  ondrain = () => {}
  onclose = () => {}
  #ondata: (chunk: Uint8Array) => void = () => {}
  #held: (() => void)[] | undefined = []
  #closeCause: StreamCloseCause | undefined
  #closeFired = false

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

  finish(): void {
    if (this.#closeFired) return
    this.#closeFired = true
    this.#closeCause ??= 'ended'
    this.emit(() => this.onclose())
  }

  get closed(): boolean {
    return this.#closeCause !== undefined
  }

  get closeCause(): StreamCloseCause | undefined {
    return this.#closeCause
  }

  get resetCode(): number | undefined {
    return undefined
  }

  write(chunk: Uint8Array): number {
    return this.#closeCause ? 0 : (this.socket?.write(chunk) ?? 0)
  }

  end(): void {
    this.socket?.end()
  }

  terminate(): void {
    this.#closeCause ??= 'terminated'
    this.socket?.terminate()
  }

  pause(): void {
    this.socket?.pause()
  }

  resume(): void {
    this.socket?.resume()
  }
}
