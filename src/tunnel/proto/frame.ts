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

export function encodeFrame(type: FrameType, flags: number, streamId: number, body?: Uint8Array): Uint8Array {
  const length = body?.length ?? 0
  const out = new Uint8Array(HEADER_BYTES + length)
  const view = new DataView(out.buffer)
  view.setUint32(0, (length << 8) | (type << 4) | flags)
  view.setUint32(4, streamId & 0x7fffffff)
  if (body) out.set(body, HEADER_BYTES)
  return out
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n >>> 0)
  return b
}

export function encodeWindowIncrement(streamId: number, increment: number): Uint8Array {
  return encodeFrame(FrameType.WNDINC, 0, streamId, u32(increment))
}

export function encodeReset(streamId: number, code: number): Uint8Array {
  return encodeFrame(FrameType.RST, 0, streamId, u32(code))
}

export function encodeGoAway(lastStreamId: number, code: number, message = ''): Uint8Array {
  const text = new TextEncoder().encode(message)
  const body = new Uint8Array(8 + text.length)
  const view = new DataView(body.buffer)
  view.setUint32(0, lastStreamId & 0x7fffffff)
  view.setUint32(4, code)
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

/**
 * Incremental frame reader: feed it socket chunks, get whole frames. Every frame is validated
 * (known type, stream id rules, fixed body sizes) before the session sees it.
 */
export class FrameReader {
  /**
   * Bytes of an unfinished frame. It grows by doubling (up to one whole frame) and is filled in
   * place: concatenating on every chunk made a 16 MB frame sent in 16 KB pieces cost seconds of CPU.
   */
  #buf: Uint8Array = new Uint8Array(0)
  #len = 0
  readonly #maxBody: number

  constructor(options: { maxBody?: number } = {}) {
    this.#maxBody = options.maxBody ?? MAX_BODY
  }

  /** Appends `chunk` and returns every complete frame; throws FrameError on a bad one. */
  push(chunk: Uint8Array): Frame[] {
    let buf: Uint8Array
    if (this.#len === 0) buf = chunk
    else {
      const need = this.#len + chunk.length
      if (need > this.#buf.length) {
        const grown = new Uint8Array(Math.max(need, Math.min(this.#buf.length * 2, HEADER_BYTES + this.#maxBody)))
        grown.set(this.#buf.subarray(0, this.#len))
        this.#buf = grown
      }
      this.#buf.set(chunk, this.#len)
      this.#len = need
      buf = this.#buf.subarray(0, need)
    }
    const frames: Frame[] = []
    let at = 0
    while (buf.length - at >= HEADER_BYTES) {
      const view = new DataView(buf.buffer, buf.byteOffset + at, HEADER_BYTES)
      const word = view.getUint32(0)
      const length = word >>> 8
      const type = (word >> 4) & 0xf
      const flags = word & 0xf
      const streamId = view.getUint32(4) & 0x7fffffff
      if (type > FrameType.GOAWAY) throw new FrameError(MuxError.PROTOCOL, `unknown frame type ${type}`)
      if (length > this.#maxBody) throw new FrameError(MuxError.FRAME_SIZE, `frame body of ${length} bytes is too large`)
      if (type === FrameType.GOAWAY) {
        if (streamId !== 0) throw new FrameError(MuxError.PROTOCOL, 'GOAWAY on a stream')
        if (length < 8) throw new FrameError(MuxError.FRAME_SIZE, 'GOAWAY shorter than 8 bytes')
      } else {
        if (streamId === 0) throw new FrameError(MuxError.PROTOCOL, 'stream frame on stream 0')
        if ((type === FrameType.RST || type === FrameType.WNDINC) && length !== 4)
          throw new FrameError(MuxError.FRAME_SIZE, `${type === FrameType.RST ? 'RST' : 'WNDINC'} body must be 4 bytes`)
      }
      if (buf.length - at < HEADER_BYTES + length) break
      // Copy the body: the caller may keep it after the socket reuses its buffer.
      const body = buf.slice(at + HEADER_BYTES, at + HEADER_BYTES + length)
      frames.push({ type: type as FrameType, flags, streamId, body })
      at += HEADER_BYTES + length
    }
    this.#keep(buf, at)
    return frames
  }

  /** Keeps `buf` from `at` (the start of an unfinished frame) for the next chunk. */
  #keep(buf: Uint8Array, at: number): void {
    const rest = buf.length - at
    if (rest === 0) {
      this.#len = 0
      // A large frame's buffer is not kept around once it is done.
      if (this.#buf.length > 64 * 1024) this.#buf = new Uint8Array(0)
      return
    }
    if (this.#len === 0) {
      // The rest came straight from the socket's chunk, which it reuses: copy it.
      if (this.#buf.length < rest) this.#buf = new Uint8Array(Math.max(rest, 4096))
      this.#buf.set(buf.subarray(at))
    } else if (at > 0) this.#buf.copyWithin(0, at, buf.length)
    this.#len = rest
  }

  get buffered(): number {
    return this.#len
  }
}

export function readU32(body: Uint8Array, offset = 0): number {
  return new DataView(body.buffer, body.byteOffset, body.length).getUint32(offset)
}
