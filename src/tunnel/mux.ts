import {
  encodeFrame,
  encodeGoAway,
  encodeU32Frame,
  Flag,
  FrameError,
  FrameReader,
  FrameType,
  HEADER_BYTES,
  INITIAL_WINDOW,
  MuxError,
  putHeader,
  putU32,
  readU32,
  type Frame,
} from './proto/frame.ts'

/**
 * What a session writes to: a TLS socket (Bun's socket API: `write` returns bytes taken, and what it
 * did not take is dropped, so the session may reuse the array once `write` returns).
 */
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
 * Past this many bytes queued, the peer has stopped reading while still sending (every DATA frame it
 * sends earns a WNDINC, every frame for a closed stream an RST): the session is cut. Stream writes stop
 * at the high water mark, so only such control frames can get here.
 */
const DEFAULT_QUEUE_LIMIT = 4 * SESSION_HIGH_WATER
/**
 * Consumed bytes are credited back (WNDINC) once this many have gathered, not per DATA frame: the peer
 * keeps at least half its window, so it never waits for credit while we read, and a request or a
 * response smaller than this costs no WNDINC at all (one per proxied request each way was a TLS write
 * of its own, 14 % of the edge's samples).
 */
const CREDIT_THRESHOLD = INITIAL_WINDOW / 2
/**
 * Size of a batch buffer (see `MuxSession.flush`): the largest DATA frame and 16 KiB of small ones, so
 * bulk frames are copied into a buffer that is used again rather than into a new 64 KiB array each
 * (allocating and zeroing those was a quarter of an agent's samples on /64k). Buffers are lent to
 * sessions for a turn and come back to a shared list, so an idle session holds none.
 */
const BATCH_BYTES = HEADER_BYTES + MAX_DATA_FRAME + 16 * 1024
const MAX_SPARE_BATCHES = 16
const spareBatches: Uint8Array[] = []

/** Sessions holding frames for the end of this event-loop turn. */
const unflushed: MuxSession[] = []
let flushPending = false

function flushAll(): void {
  flushPending = false
  for (const session of unflushed.splice(0)) session.endOfTurn()
}

function returnBatch(batch: Uint8Array): void {
  if (spareBatches.length < MAX_SPARE_BATCHES) spareBatches.push(batch)
}

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
  /** Bytes read but not yet credited back to the peer. */
  #unacked = 0
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
  /**
   * The header that opens a stream (proxy header, stream type): sent whole even while the session is
   * congested, where `write` would take nothing and the stream would reach the agent without its
   * header. A few hundred bytes, always inside a new stream's window.
   */
  writeHeader(chunk: Uint8Array): void {
    if (this.#closed || this.#localEnded) return
    if (chunk.length > this.#sendWindow) throw new RangeError('a stream header must fit the stream window')
    this.#send(FrameType.DATA, 0, chunk)
    this.#sendWindow -= chunk.length
  }

  write(chunk: Uint8Array): number {
    if (this.#closed || this.#localEnded) return 0
    if (this.#session.congested) {
      this.#wantDrain = true
      this.#session.waitForDrain(this)
      return 0
    }
    const n = Math.min(chunk.length, this.#sendWindow)
    // Most writes are one frame: a Buffer's subarray (Bun's sockets hand out Buffers) is not free.
    if (n === chunk.length && n <= MAX_DATA_FRAME) this.#send(FrameType.DATA, 0, chunk)
    else
      for (let at = 0; at < n; ) {
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
    this.#session.control(FrameType.RST, this.id, code)
    this.#finish('terminated')
  }

  /** Stops crediting the peer: it can send at most what is left of the window. */
  pause(): void {
    this.#paused = true
  }

  resume(): void {
    this.#paused = false
    if (!this.#closed) this.#credit()
  }

  /** Gives the peer its window back once enough was read (see CREDIT_THRESHOLD). */
  #credit(): void {
    if (this.#unacked < CREDIT_THRESHOLD) return
    this.#session.control(FrameType.WNDINC, this.id, this.#unacked)
    this.#recvWindow += this.#unacked
    this.#unacked = 0
  }

  #send(type: FrameType, flags: number, body?: Uint8Array): void {
    if (!this.#synSent) {
      flags |= Flag.SYN
      this.#synSent = true
    }
    this.#session.frame(type, flags, this.id, body)
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
          this.#unacked += n
          this.ondata(frame.body)
          // Nothing follows a FIN, so its data needs no credit.
          if (!this.#paused && !this.#closed && !(frame.flags & Flag.FIN)) this.#credit()
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

/** What a peer can make a session hold (`MuxSession.limit`). */
export interface MuxLimits {
  /** Largest frame body accepted: a stream window (256 KiB) unless set; the framing allows 16 MiB. */
  maxFrameBody?: number
  /** Most streams the peer may have open at once. */
  maxRemoteStreams?: number
  /** Bytes queued for a peer that does not read, past which the session is cut (16 MiB). */
  maxQueuedBytes?: number
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
  // No DATA frame can be larger than a stream's window without breaking flow control.
  readonly #reader = new FrameReader({ maxBody: INITIAL_WINDOW })
  readonly #streams = new Map<number, MuxStream>()
  readonly #waiting = new Set<MuxStream>()
  readonly #maxLocalStreams: number
  #maxRemoteStreams = Infinity
  #maxQueuedBytes = DEFAULT_QUEUE_LIMIT
  #nextId: number
  #lastRemoteId = 0
  #localOpen = 0
  #remoteOpen = 0
  #outbox: Uint8Array[] = []
  /** Small frames queued after the outbox, copied into one chunk (`#tailLen` bytes of `#tail`). */
  #tail: Uint8Array | undefined
  #tailLen = 0
  #outboxBytes = 0
  /**
   * Frames written during this event-loop turn, encoded in place (`#batchLen` bytes) and sent as one
   * transport write at its end (`flush`): on a TLS socket every write is a record and a syscall, and
   * a turn's frames (the requests the edge's pool uncorks together, the answers of several upstreams)
   * then cost one. Only used while nothing waits in the outbox, so order holds.
   */
  #batch: Uint8Array | undefined
  #batchLen = 0
  #scheduled = false
  #closed = false

  readonly #remoteParity: 0 | 1

  /**
   * `role: 'server'` (the edge) opens even ids from 2 and accepts odd ones; `'client'` (an agent)
   * opens odd ids from 3, as ngrok's agents do, and accepts even ones. `limits` bound what the peer
   * can make us hold (see `limit()`).
   */
  constructor(transport: MuxTransport, handlers: MuxSessionHandlers, options: { maxLocalStreams?: number; role?: 'server' | 'client'; limits?: MuxLimits } = {}) {
    this.#transport = transport
    this.#handlers = handlers
    this.#maxLocalStreams = options.maxLocalStreams ?? 400
    if (options.limits) this.limit(options.limits)
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

  /**
   * Changes what the peer may make us hold: the largest frame body (a larger header ends the session
   * with GOAWAY(FrameSizeError) before its body is read), how many streams it may have open (a SYN
   * past that is refused with RST(StreamRefused)), and how much may wait for it to read (past that
   * the session ends at once). The edge tightens these until an agent authenticates.
   */
  limit(limits: MuxLimits): void {
    if (limits.maxFrameBody !== undefined) this.#reader.maxBody = limits.maxFrameBody
    if (limits.maxRemoteStreams !== undefined) this.#maxRemoteStreams = limits.maxRemoteStreams
    if (limits.maxQueuedBytes !== undefined) this.#maxQueuedBytes = limits.maxQueuedBytes
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
      // What this turn already wrote still goes out before our side of the connection closes.
      this.flush()
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
      if (this.#remoteOpen >= this.#maxRemoteStreams) return this.control(FrameType.RST, frame.streamId, MuxError.STREAM_REFUSED)
      this.#remoteOpen++
      const opened = new MuxStream(this, frame.streamId, 'remote')
      this.#streams.set(opened.id, opened)
      this.#handlers.onStream(opened)
      opened.receive(frame)
      return
    }
    // Late frames for a stream that is gone: refuse DATA, drop the rest (as the agents do).
    if (frame.type === FrameType.DATA) this.control(FrameType.RST, frame.streamId, MuxError.STREAM_CLOSED)
  }

  /** Sends bytes (whole frames) after everything written before them, keeping what the transport did not take. */
  write(bytes: Uint8Array): void {
    if (this.#closed) return
    const at = this.#reserve(bytes.length)
    if (at >= 0) this.#batch!.set(bytes, at)
    else this.#send(bytes)
  }

  /** @internal a frame of one of this session's streams */
  frame(type: FrameType, flags: number, streamId: number, body?: Uint8Array): void {
    if (this.#closed) return
    const length = body?.length ?? 0
    const at = this.#reserve(HEADER_BYTES + length)
    if (at < 0) return this.#send(encodeFrame(type, flags, streamId, body))
    putHeader(this.#batch!, at, type, flags, streamId, length)
    if (body) this.#batch!.set(body, at + HEADER_BYTES)
  }

  /** @internal a frame whose body is one u32 (WNDINC, RST) */
  control(type: FrameType, streamId: number, value: number): void {
    if (this.#closed) return
    const at = this.#reserve(HEADER_BYTES + 4)
    if (at < 0) return this.#send(encodeU32Frame(type, streamId, value))
    putHeader(this.#batch!, at, type, 0, streamId, 4)
    putU32(this.#batch!, at + HEADER_BYTES, value)
  }

  /** Room for `size` bytes in the batch (its offset), or -1: the bytes must follow the outbox. */
  #reserve(size: number): number {
    if (this.#outboxBytes > 0) return -1
    if (size > BATCH_BYTES || this.#batchLen + size > BATCH_BYTES) {
      this.flush()
      if (size > BATCH_BYTES || this.#outboxBytes > 0 || this.#closed) return -1
    }
    this.#batch ??= spareBatches.pop() ?? new Uint8Array(BATCH_BYTES)
    const at = this.#batchLen
    this.#batchLen += size
    if (!this.#scheduled) {
      this.#scheduled = true
      unflushed.push(this)
      if (!flushPending) {
        flushPending = true
        setImmediate(flushAll)
      }
    }
    return at
  }

  /** @internal the turn is over: write what it batched */
  endOfTurn(): void {
    this.#scheduled = false
    this.flush()
  }

  /** Writes the frames batched so far (at the end of the turn, or sooner when the batch is full). */
  flush(): void {
    const length = this.#batchLen
    const batch = this.#batch
    if (length === 0 || !batch || this.#closed) return
    this.#batchLen = 0
    this.#batch = undefined
    const n = Math.max(this.#transport.write(batch.subarray(0, length)), 0)
    // The buffer is lent again: what the transport did not take is copied out.
    if (n < length) this.#hold(batch.slice(n, length))
    returnBatch(batch)
  }

  /** Writes bytes at once when nothing waits before them, else queues them. */
  #send(bytes: Uint8Array): void {
    if (this.#closed) return
    if (this.#outboxBytes === 0) {
      const n = this.#transport.write(bytes)
      if (n === bytes.length) return
      bytes = bytes.subarray(Math.max(n, 0))
    }
    this.#hold(bytes)
  }

  /** Queues bytes the transport did not take (Bun drops them otherwise) until `drain`. */
  #hold(bytes: Uint8Array): void {
    this.#outboxBytes += bytes.length
    if (this.#outboxBytes > this.#maxQueuedBytes) {
      this.#outbox = []
      this.#tail = undefined
      this.#tailLen = 0
      this.#outboxBytes = 0
      this.#end({ code: MuxError.ENHANCE_YOUR_CALM, message: `peer stopped reading: over ${this.#maxQueuedBytes} bytes queued`, by: 'local' })
      return this.#transport.terminate()
    }
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
    this.#waiting.delete(stream)
    if (!this.#streams.delete(stream.id)) return
    if (stream.id % 2 === this.#remoteParity) this.#remoteOpen--
    else this.#localOpen--
  }

  /** Tells the peer we are done (with a reason) and closes the session. */
  goAway(code: number, message = ''): void {
    if (this.#closed) return
    this.write(encodeGoAway(this.#lastRemoteId, code, message))
    this.flush()
    this.#end({ code, message, by: 'local' })
    this.#transport.end()
  }

  /**
   * Like goAway, but the transport is closed at once instead of gracefully: for a peer that broke a
   * limit. (Bun ignores a terminate() in the same tick as an end(), and an ended socket stays open
   * for as long as the peer keeps it, so this never calls end().)
   */
  abort(code: number, message = ''): void {
    if (this.#closed) return
    this.write(encodeGoAway(this.#lastRemoteId, code, message))
    this.flush()
    this.#end({ code, message, by: 'local' })
    this.#transport.terminate()
  }

  /** The transport closed under us. */
  transportClosed(): void {
    this.#end({ code: MuxError.PEER_EOF, message: 'connection closed', by: 'transport' })
    // Nothing can be written any more; a session waiting for the end of the turn must not hold it.
    this.#outbox = []
    this.#tail = undefined
    this.#tailLen = 0
    this.#outboxBytes = 0
  }

  #end(reason: CloseReason): void {
    if (this.#closed) return
    // Closed first: a stream's close handler that opens another (a retry) must get undefined, not a
    // stream on a dead transport that nothing would ever close.
    this.#closed = true
    if (this.#batch) returnBatch(this.#batch)
    this.#batch = undefined
    this.#batchLen = 0
    // Nor does the end-of-turn list keep a closed session (and what its reader holds) alive.
    if (this.#scheduled) {
      this.#scheduled = false
      const at = unflushed.indexOf(this)
      if (at !== -1) unflushed.splice(at, 1)
    }
    for (const stream of [...this.#streams.values()]) stream.sessionClosed()
    this.#handlers.onClose(reason)
  }
}

/**
 * One direction of a splice: `from`'s data written to `to`. What `to` cannot take (its peer's window
 * is spent, or its session is congested) waits here while `from` is paused: `from` then credits its
 * peer nothing, so what can wait is bounded by `from`'s window (256 KiB), whatever the two peers do.
 */
class SpliceDirection {
  readonly #from: MuxStream
  readonly #to: MuxStream
  #pending: Uint8Array[] = []
  #ended = false

  constructor(from: MuxStream, to: MuxStream) {
    this.#from = from
    this.#to = to
  }

  /** Bytes waiting for `to` (for tests and the drain). */
  get pending(): number {
    let n = 0
    for (const chunk of this.#pending) n += chunk.length
    return n
  }

  data(chunk: Uint8Array): void {
    if (this.#pending.length) return void this.#pending.push(chunk)
    const n = this.#to.write(chunk)
    if (n === chunk.length) return
    // Frame bodies are views of the socket's read, which Bun gives each read on its own: safe to keep.
    this.#pending.push(n > 0 ? chunk.subarray(n) : chunk)
    this.#from.pause()
  }

  /** `to` has room again. */
  drained(): void {
    while (this.#pending.length) {
      const chunk = this.#pending[0]!
      const n = this.#to.write(chunk)
      if (n < chunk.length) return void (this.#pending[0] = chunk.subarray(Math.max(n, 0)))
      this.#pending.shift()
    }
    if (this.#ended) this.#to.end()
    else this.#from.resume()
  }

  /** `from` sent FIN: pass it on after what waits. */
  ended(): void {
    this.#ended = true
    if (!this.#pending.length) this.#to.end()
  }
}

/**
 * Joins two streams of two sessions (a link stream and an agent's stream, on the member holding the
 * agent): each one's DATA frames are written to the other as they are read, with no relay between
 * them. Backpressure is the streams' own: a direction whose target cannot take more stops crediting
 * its source, so the source's peer stops at its window. A FIN passes on once what waits is written;
 * a reset, or the end of either session, resets the other stream. `early` is data `a` delivered
 * before the splice (written to `b` first). Handlers set on the streams before (`onclose` counters)
 * still run.
 */
export function spliceStreams(a: MuxStream, b: MuxStream, early: readonly Uint8Array[] = []): { readonly pending: number } {
  const ab = new SpliceDirection(a, b)
  const ba = new SpliceDirection(b, a)
  join(a, b, ab, ba)
  join(b, a, ba, ab)
  for (const chunk of early) ab.data(chunk)
  return {
    get pending() {
      return ab.pending + ba.pending
    },
  }
}

function join(self: MuxStream, other: MuxStream, out: SpliceDirection, into: SpliceDirection): void {
  self.ondata = (chunk) => out.data(chunk)
  self.onend = () => out.ended()
  self.ondrain = () => into.drained()
  const prev = self.onclose
  self.onclose = () => {
    prev()
    // Both FINs crossed: the other side got ours, and ends once its data is out. Anything else is a break.
    if (self.closeCause !== 'ended') other.terminate()
  }
}
