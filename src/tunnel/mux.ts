import {
  encodeFrame,
  encodeGoAway,
  encodeReset,
  encodeWindowIncrement,
  Flag,
  FrameError,
  FrameReader,
  FrameType,
  INITIAL_WINDOW,
  MuxError,
  readU32,
  type Frame,
} from './proto/frame.ts'

/** What a session writes to: a TLS socket (Bun's socket API: `write` returns bytes taken). */
export interface MuxTransport {
  write(data: Uint8Array): number
  end(): void
  terminate(): void
}

/** Largest DATA frame we send; small frames keep streams fair on one connection. */
const MAX_DATA_FRAME = 64 * 1024
/** Above this many bytes queued on the connection, streams stop accepting writes until it drains. */
const SESSION_HIGH_WATER = 4 * 1024 * 1024
/**
 * Frames up to this size are queued by copying them into shared chunks: one array per 12-byte frame
 * (the RST or WNDINC that answers a peer's frame) costs ~600 bytes of memory, so 16 MB of frames from
 * a peer that does not read took 1.2 GB.
 */
const SMALL_FRAME = 256
const COALESCE_CHUNK = 16 * 1024

/**
 * Why a stream closed: both FINs (`ended`), our own reset (`terminated`), the peer's RST (`reset`,
 * with its code in `resetCode`), or the session ending under it (`session`).
 */
export type StreamCloseCause = 'ended' | 'terminated' | 'reset' | 'session'

/**
 * One muxado stream, shaped like a Bun socket (`write` returns what it took, `drain` says when to
 * write again, `pause`/`resume` stop crediting the peer) so the TCP relay can use it unchanged.
 */
export class MuxStream {
  readonly id: number
  readonly #session: MuxSession
  #sendWindow = INITIAL_WINDOW
  #recvWindow = INITIAL_WINDOW
  #pendingCredit = 0
  #paused = false
  #synSent: boolean
  #wantDrain = false
  #localEnded = false
  #remoteEnded = false
  #closed = false
  #closeCause: StreamCloseCause | undefined
  #resetCode: number | undefined

  ondata: (chunk: Uint8Array) => void = () => {}
  ondrain: () => void = () => {}
  /** The peer sent FIN: no more data will come. */
  onend: () => void = () => {}
  /** Fully closed (both FINs, a reset, or the session ended). */
  onclose: () => void = () => {}

  constructor(session: MuxSession, id: number, opener: 'local' | 'remote') {
    this.#session = session
    this.id = id
    this.#synSent = opener === 'remote'
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Why the stream closed; undefined while it is open. */
  get closeCause(): StreamCloseCause | undefined {
    return this.#closeCause
  }

  /** The error code of the peer's RST (`MuxError`), when it reset the stream. */
  get resetCode(): number | undefined {
    return this.#resetCode
  }

  /** Sends as much of `chunk` as the peer's window and the connection allow; returns the bytes taken. */
  write(chunk: Uint8Array): number {
    if (this.#closed || this.#localEnded) return 0
    if (this.#session.congested) {
      this.#wantDrain = true
      this.#session.waitForDrain(this)
      return 0
    }
    const n = Math.min(chunk.length, this.#sendWindow)
    let at = 0
    while (at < n) {
      const size = Math.min(n - at, MAX_DATA_FRAME)
      this.#send(FrameType.DATA, 0, chunk.subarray(at, at + size))
      at += size
    }
    this.#sendWindow -= n
    if (n < chunk.length) this.#wantDrain = true
    return n
  }

  /** Half-closes our side (FIN). */
  end(): void {
    if (this.#closed || this.#localEnded) return
    this.#localEnded = true
    this.#send(FrameType.DATA, Flag.FIN)
    if (this.#remoteEnded) this.#finish('ended')
  }

  /** Resets the stream (RST) and forgets it. */
  terminate(code: number = MuxError.STREAM_CANCELLED): void {
    if (this.#closed) return
    this.#session.write(encodeReset(this.id, code))
    this.#finish('terminated')
  }

  /** Stops crediting the peer: it can send at most what is left of the window. */
  pause(): void {
    this.#paused = true
  }

  resume(): void {
    this.#paused = false
    if (this.#pendingCredit > 0 && !this.#closed) {
      this.#session.write(encodeWindowIncrement(this.id, this.#pendingCredit))
      this.#recvWindow += this.#pendingCredit
      this.#pendingCredit = 0
    }
  }

  #send(type: FrameType, flags: number, body?: Uint8Array): void {
    if (!this.#synSent) {
      flags |= Flag.SYN
      this.#synSent = true
    }
    this.#session.write(encodeFrame(type, flags, this.id, body))
  }

  /** @internal frames from the session */
  receive(frame: Frame): void {
    if (this.#closed) return
    switch (frame.type) {
      case FrameType.DATA: {
        const n = frame.body.length
        if (n > this.#recvWindow) return this.terminate(MuxError.FLOW_CONTROL)
        if (n > 0) {
          this.#recvWindow -= n
          this.ondata(frame.body)
          if (this.#paused) this.#pendingCredit += n
          else if (!this.#closed && !this.#remoteEndedBy(frame)) {
            this.#recvWindow += n
            this.#session.write(encodeWindowIncrement(this.id, n))
          }
        }
        if (frame.flags & Flag.FIN) {
          this.#remoteEnded = true
          this.onend()
          if (this.#localEnded) this.#finish('ended')
        }
        return
      }
      case FrameType.WNDINC: {
        const inc = readU32(frame.body)
        if (inc === 0 || inc > 0x7fffffff) return this.terminate(MuxError.PROTOCOL)
        // The window never grows past its initial size (the agents cap it the same way).
        this.#sendWindow = Math.min(INITIAL_WINDOW, this.#sendWindow + inc)
        this.drained()
        return
      }
      case FrameType.RST:
        this.#resetCode = frame.body.length >= 4 ? readU32(frame.body) : undefined
        this.#finish('reset')
        return
    }
  }

  #remoteEndedBy(frame: Frame): boolean {
    return (frame.flags & Flag.FIN) !== 0
  }

  /** @internal the window or the connection has room again */
  drained(): void {
    if (!this.#wantDrain || this.#closed || this.#session.congested || this.#sendWindow === 0) return
    this.#wantDrain = false
    this.ondrain()
  }

  /** @internal */
  sessionClosed(): void {
    this.#finish('session')
  }

  #finish(cause: StreamCloseCause): void {
    if (this.#closed) return
    this.#closed = true
    this.#closeCause = cause
    this.#session.forget(this)
    this.onclose()
  }
}

/** Why a session ended; `by` says who ended it (a peer GOAWAY is a deliberate goodbye). */
export interface CloseReason {
  code: number
  message: string
  by: 'peer' | 'local' | 'transport'
}

export interface MuxSessionHandlers {
  /** A stream the peer opened. Set its handlers before returning: the SYN frame's data follows at once. */
  onStream(stream: MuxStream): void
  /** The session ended (transport closed, GOAWAY, or a protocol error). */
  onClose(reason: CloseReason): void
}

/**
 * A muxado session over one transport (the edge's or, with `role: 'client'`, an agent's). Any malformed frame ends the session with GOAWAY(Protocol); nothing a peer sends can throw
 * out of `feed`.
 */
export class MuxSession {
  readonly #transport: MuxTransport
  readonly #handlers: MuxSessionHandlers
  readonly #reader = new FrameReader()
  readonly #streams = new Map<number, MuxStream>()
  readonly #waiting = new Set<MuxStream>()
  readonly #maxLocalStreams: number
  #nextId: number
  #lastRemoteId = 0
  #localOpen = 0
  #outbox: Uint8Array[] = []
  /** Small frames queued after the outbox, copied into one chunk (`#tailLen` bytes of `#tail`). */
  #tail: Uint8Array | undefined
  #tailLen = 0
  #outboxBytes = 0
  #closed = false

  readonly #remoteParity: 0 | 1

  /**
   * `role: 'server'` (the edge) opens even ids from 2 and accepts odd ones; `'client'` (an agent)
   * opens odd ids from 3, as ngrok's agents do, and accepts even ones.
   */
  constructor(transport: MuxTransport, handlers: MuxSessionHandlers, options: { maxLocalStreams?: number; role?: 'server' | 'client' } = {}) {
    this.#transport = transport
    this.#handlers = handlers
    this.#maxLocalStreams = options.maxLocalStreams ?? 400
    const client = options.role === 'client'
    this.#nextId = client ? 3 : 2
    this.#remoteParity = client ? 0 : 1
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Streams we opened that are still open (capped below the agent's 512). */
  get localStreams(): number {
    return this.#localOpen
  }

  get congested(): boolean {
    return this.#outboxBytes > SESSION_HIGH_WATER
  }

  /** Opens a server stream, or returns undefined when the cap is reached or the session is closing. */
  open(): MuxStream | undefined {
    if (this.#closed || this.#localOpen >= this.#maxLocalStreams) return undefined
    const stream = new MuxStream(this, this.#nextId, 'local')
    this.#nextId += 2
    this.#localOpen++
    this.#streams.set(stream.id, stream)
    return stream
  }

  /** Bytes from the transport. */
  feed(chunk: Uint8Array): void {
    if (this.#closed) return
    let frames: Frame[]
    try {
      frames = this.#reader.push(chunk)
    } catch (err) {
      const code = err instanceof FrameError ? err.code : MuxError.PROTOCOL
      return this.goAway(code, err instanceof Error ? err.message : 'bad frame')
    }
    for (const frame of frames) {
      if (this.#closed) return
      this.#dispatch(frame)
    }
  }

  #dispatch(frame: Frame): void {
    if (frame.type === FrameType.GOAWAY) {
      const code = readU32(frame.body, 4)
      this.#end({ code, message: `peer went away: ${new TextDecoder().decode(frame.body.subarray(8))}`, by: 'peer' })
      return this.#transport.end()
    }
    const stream = this.#streams.get(frame.streamId)
    if (stream) return stream.receive(frame)
    const remoteOpened = frame.streamId % 2 === this.#remoteParity
    if (frame.type === FrameType.DATA && frame.flags & Flag.SYN) {
      if (!remoteOpened) return this.goAway(MuxError.PROTOCOL, `peer opened stream ${frame.streamId}, which has our parity`)
      if (frame.streamId <= this.#lastRemoteId) return this.goAway(MuxError.PROTOCOL, `stream id ${frame.streamId} reused`)
      this.#lastRemoteId = frame.streamId
      const opened = new MuxStream(this, frame.streamId, 'remote')
      this.#streams.set(opened.id, opened)
      this.#handlers.onStream(opened)
      opened.receive(frame)
      return
    }
    // Late frames for a stream that is gone: refuse DATA, drop the rest (as the agents do).
    if (frame.type === FrameType.DATA) this.write(encodeReset(frame.streamId, MuxError.STREAM_CLOSED))
  }

  /** Queues bytes for the transport, keeping what it did not take (Bun drops it otherwise). */
  write(bytes: Uint8Array): void {
    if (this.#closed) return
    if (this.#outboxBytes === 0) {
      const n = this.#transport.write(bytes)
      if (n === bytes.length) return
      bytes = bytes.subarray(Math.max(n, 0))
    }
    this.#outboxBytes += bytes.length
    if (bytes.length > SMALL_FRAME) {
      this.#flushTail()
      this.#outbox.push(bytes)
      return
    }
    if (this.#tail && this.#tailLen + bytes.length > this.#tail.length) this.#flushTail()
    this.#tail ??= new Uint8Array(COALESCE_CHUNK)
    this.#tail.set(bytes, this.#tailLen)
    this.#tailLen += bytes.length
  }

  /** Moves the small frames gathered so far into the outbox, in order. */
  #flushTail(): void {
    if (this.#tail && this.#tailLen > 0) this.#outbox.push(this.#tail.subarray(0, this.#tailLen))
    this.#tail = undefined
    this.#tailLen = 0
  }

  /** The transport can take more: flush, then wake streams that were told to wait. */
  drain(): void {
    this.#flushTail()
    while (this.#outbox.length) {
      const chunk = this.#outbox[0]!
      const n = this.#transport.write(chunk)
      if (n < chunk.length) {
        this.#outbox[0] = chunk.subarray(Math.max(n, 0))
        this.#outboxBytes -= Math.max(n, 0)
        return
      }
      this.#outbox.shift()
      this.#outboxBytes -= chunk.length
    }
    const waiting = [...this.#waiting]
    this.#waiting.clear()
    for (const stream of waiting) stream.drained()
  }

  /** @internal */
  waitForDrain(stream: MuxStream): void {
    this.#waiting.add(stream)
  }

  /** @internal */
  forget(stream: MuxStream): void {
    if (this.#streams.delete(stream.id) && stream.id % 2 !== this.#remoteParity) this.#localOpen--
    this.#waiting.delete(stream)
  }

  /** Tells the peer we are done (with a reason) and closes the session. */
  goAway(code: number, message = ''): void {
    if (this.#closed) return
    this.write(encodeGoAway(this.#lastRemoteId, code, message))
    this.#end({ code, message, by: 'local' })
    this.#transport.end()
  }

  /** The transport closed under us. */
  transportClosed(): void {
    this.#end({ code: MuxError.PEER_EOF, message: 'connection closed', by: 'transport' })
  }

  #end(reason: CloseReason): void {
    if (this.#closed) return
    // Closed first: a stream's close handler that opens another (a retry) must get undefined, not a
    // stream on a dead transport that nothing would ever close.
    this.#closed = true
    for (const stream of [...this.#streams.values()]) stream.sessionClosed()
    this.#handlers.onClose(reason)
  }
}
