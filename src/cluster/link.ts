import type { Socket, UnixSocketListener } from 'bun'
import { rmSync } from 'node:fs'
import type { TunnelStream } from '../endpoints/endpoint.ts'
import type { StreamCloseCause } from '../tunnel/mux.ts'
import { clientRelayHandlers, newRelayConn, relayClientData, type RelayConn } from '../proxy/tcp-relay.ts'
import { relayThroughStream } from '../proxy/tunnel-relay.ts'
import { encodeFrame, FrameReader } from './frames.ts'

/**
 * The local link between workers: a unix socket per worker. A worker that has a connection for an
 * agent endpoint another worker holds opens a link connection to that worker, sends one frame
 * naming the tunnel, reads one byte (1: the agent took the stream, 0: it could not), then both
 * sides relay raw bytes: the holder between the link connection and the agent's muxado stream, with
 * the same backpressure as any relay (pause the side that is ahead, resume on drain).
 */
export interface LinkRequest {
  account: string
  tunnel: string
  /** The client address the agent sees in its proxy header. */
  client: string
  wait: boolean
}

const ACCEPTED = Uint8Array.of(1)
const REFUSED = Uint8Array.of(0)

type LinkConn = RelayConn & { reader: FrameReader | undefined }

/** Serves the link: `open` finds the local agent tunnel and opens a proxy stream on it. */
export function serveLink(path: string, open: (request: LinkRequest) => Promise<TunnelStream | undefined>): { readonly active: number; stop(): void } {
  rmSync(path, { force: true })
  let active = 0
  const listener: UnixSocketListener<LinkConn> = Bun.listen<LinkConn>({
    unix: path,
    allowHalfOpen: true,
    socket: {
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
        socket.data.reader = undefined
        const rest = reader.rest()
        if (rest.length) relayClientData(socket, rest)
        void open(request).then(
          (stream) => attach(socket, stream),
          () => attach(socket, undefined),
        )
      },
      error: () => {},
    },
  })
  return {
    get active() {
      return active
    },
    stop() {
      listener.stop(true)
      rmSync(path, { force: true })
    },
  }
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
 * Opens a proxy stream to an agent held by the worker listening at `path`. Undefined when that
 * worker is gone or its agent could not take the stream.
 */
export async function dialLink(path: string, request: LinkRequest): Promise<TunnelStream | undefined> {
  const stream = new LinkStream()
  let answered: (ok: boolean) => void = () => {}
  const answer = new Promise<boolean>((resolve) => (answered = resolve))
  try {
    await Bun.connect<undefined>({
      unix: path,
      allowHalfOpen: true,
      socket: {
        open(socket) {
          stream.socket = socket
          socket.write(encodeFrame(request))
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
      },
    })
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
