/**
 * muxado framing as ngrok's agents speak it: an 8-byte header (uint24 length, type<<4|flags, uint32
 * stream id; all big-endian) and `length` bytes of body. Append-only: never renumber a constant.
 */
export const FrameType = { RST: 0, DATA: 1, WNDINC: 2, GOAWAY: 3 } as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

export const Flag = { FIN: 0x1, SYN: 0x2 } as const

export const MuxError = {
  NONE: 0,
  PROTOCOL: 1,
  INTERNAL: 2,
  FLOW_CONTROL: 3,
  STREAM_CLOSED: 4,
  STREAM_REFUSED: 5,
  STREAM_CANCELLED: 6,
  STREAM_RESET: 7,
  FRAME_SIZE: 8,
  ACCEPT_QUEUE_FULL: 9,
  ENHANCE_YOUR_CALM: 0xa,
  REMOTE_GONE_AWAY: 0xb,
  STREAMS_EXHAUSTED: 0xc,
  WRITE_TIMEOUT: 0xd,
  SESSION_CLOSED: 0xe,
  PEER_EOF: 0xf,
} as const

export const HEADER_BYTES = 8
export const MAX_BODY = 0xffffff
/** Both sides assume this receive window per stream; it is never negotiated and never grows. */
export const INITIAL_WINDOW = 256 * 1024

export interface Frame {
  type: FrameType
  flags: number
  streamId: number
  body: Uint8Array
}

/**
 * Writes the 8-byte header of a frame whose body is `length` bytes at `out[at]`. Byte by byte: a
 * DataView needs the array's `buffer`, which JSC materializes for every small array it is asked of
 * (9 % of an agent's samples went to that getter, one frame per proxied chunk).
 */
export function putHeader(out: Uint8Array, at: number, type: FrameType, flags: number, streamId: number, length: number): void {
  out[at] = length >>> 16
  out[at + 1] = length >>> 8
  out[at + 2] = length
  out[at + 3] = (type << 4) | flags
  putU32(out, at + 4, streamId & 0x7fffffff)
}

/** Writes `n` big-endian at `out[at]`. */
export function putU32(out: Uint8Array, at: number, n: number): void {
  out[at] = n >>> 24
  out[at + 1] = n >>> 16
  out[at + 2] = n >>> 8
  out[at + 3] = n
}

export function encodeFrame(type: FrameType, flags: number, streamId: number, body?: Uint8Array): Uint8Array {
  const length = body?.length ?? 0
  const out = new Uint8Array(HEADER_BYTES + length)
  putHeader(out, 0, type, flags, streamId, length)
  if (body) out.set(body, HEADER_BYTES)
  return out
}

/** A frame whose body is one u32 (WNDINC, RST). */
export function encodeU32Frame(type: FrameType, streamId: number, n: number): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + 4)
  putHeader(out, 0, type, 0, streamId, 4)
  putU32(out, HEADER_BYTES, n)
  return out
}

export function encodeWindowIncrement(streamId: number, increment: number): Uint8Array {
  return encodeU32Frame(FrameType.WNDINC, streamId, increment)
}

export function encodeReset(streamId: number, code: number): Uint8Array {
  return encodeU32Frame(FrameType.RST, streamId, code)
}

export function encodeGoAway(lastStreamId: number, code: number, message = ''): Uint8Array {
  const text = new TextEncoder().encode(message)
  const body = new Uint8Array(8 + text.length)
  putU32(body, 0, lastStreamId & 0x7fffffff)
  putU32(body, 4, code)
  body.set(text, 8)
  return encodeFrame(FrameType.GOAWAY, 0, 0, body)
}

/** A frame that breaks the rules; the session answers GOAWAY with `code` and closes. */
export class FrameError extends Error {
  readonly code: number
  constructor(code: number, message: string) {
    super(message)
    this.name = 'FrameError'
    this.code = code
  }
}

/** A frame header, validated. */
interface FrameHead {
  type: FrameType
  flags: number
  streamId: number
  length: number
}

/**
 * Incremental frame reader: feed it socket chunks, get whole frames. Every frame is validated
 * (known type, stream id rules, fixed body sizes, `maxBody`) from its header, before its body is
 * waited for; a body split over chunks is copied once into a buffer of its size, so a peer that
 * announces a frame can make us hold at most `maxBody` bytes for it.
 */
export class FrameReader {
  /** Largest body accepted; a session lowers it before the peer authenticates. */
  maxBody: number
  /** A header split across chunks. */
  readonly #head = new Uint8Array(HEADER_BYTES)
  #headBytes = 0
  /** The frame whose body is arriving (allocated at its announced size, which `maxBody` bounds). */
  #current: { head: FrameHead; body: Uint8Array; filled: number } | undefined

  constructor(options: { maxBody?: number } = {}) {
    this.maxBody = options.maxBody ?? MAX_BODY
  }

  /** Appends `chunk` and returns every complete frame; throws FrameError on a bad one. */
  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = []
    let at = 0
    while (at < chunk.length) {
      let current = this.#current
      if (!current) {
        let head: FrameHead
        if (this.#headBytes === 0 && chunk.length - at >= HEADER_BYTES) {
          head = this.#parseHeader(chunk, at)
          at += HEADER_BYTES
          if (chunk.length - at >= head.length) {
            // The whole frame is here (the usual case). A view, not a copy (a Buffer's slice is a view): callers
            // keep bodies past the callback, which is safe because Bun gives every socket read a buffer of its own
            // (checked in mux.test.ts).
            frames.push({ type: head.type, flags: head.flags, streamId: head.streamId, body: chunk.slice(at, at + head.length) })
            at += head.length
            continue
          }
        } else {
          const n = Math.min(HEADER_BYTES - this.#headBytes, chunk.length - at)
          this.#head.set(chunk.subarray(at, at + n), this.#headBytes)
          this.#headBytes += n
          at += n
          if (this.#headBytes < HEADER_BYTES) break
          this.#headBytes = 0
          head = this.#parseHeader(this.#head, 0)
        }
        current = this.#current = { head, body: new Uint8Array(head.length), filled: 0 }
      }
      const n = Math.min(current.body.length - current.filled, chunk.length - at)
      current.body.set(chunk.subarray(at, at + n), current.filled)
      current.filled += n
      at += n
      if (current.filled < current.body.length) break
      const { type, flags, streamId } = current.head
      frames.push({ type, flags, streamId, body: current.body })
      this.#current = undefined
    }
    return frames
  }

  #parseHeader(b: Uint8Array, at: number): FrameHead {
    const length = (b[at]! << 16) | (b[at + 1]! << 8) | b[at + 2]!
    const type = b[at + 3]! >> 4
    const flags = b[at + 3]! & 0xf
    const streamId = ((b[at + 4]! & 0x7f) << 24) | (b[at + 5]! << 16) | (b[at + 6]! << 8) | b[at + 7]!
    if (type > FrameType.GOAWAY) throw new FrameError(MuxError.PROTOCOL, `unknown frame type ${type}`)
    if (length > this.maxBody) throw new FrameError(MuxError.FRAME_SIZE, `frame body of ${length} bytes is too large`)
    if (type === FrameType.GOAWAY) {
      if (streamId !== 0) throw new FrameError(MuxError.PROTOCOL, 'GOAWAY on a stream')
      if (length < 8) throw new FrameError(MuxError.FRAME_SIZE, 'GOAWAY shorter than 8 bytes')
    } else {
      if (streamId === 0) throw new FrameError(MuxError.PROTOCOL, 'stream frame on stream 0')
      if ((type === FrameType.RST || type === FrameType.WNDINC) && length !== 4)
        throw new FrameError(MuxError.FRAME_SIZE, `${type === FrameType.RST ? 'RST' : 'WNDINC'} body must be 4 bytes`)
    }
    return { type: type as FrameType, flags, streamId, length }
  }

  /** Bytes held for a frame not yet complete. */
  get buffered(): number {
    return this.#headBytes + (this.#current?.filled ?? 0)
  }
}

export function readU32(body: Uint8Array, offset = 0): number {
  return ((body[offset]! << 24) | (body[offset + 1]! << 16) | (body[offset + 2]! << 8) | body[offset + 3]!) >>> 0
}
