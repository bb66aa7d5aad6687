/**
 * The framing of the local link: a 4-byte big-endian length, then that many bytes of JSON. Control
 * messages are all frames; a proxy stream starts with one frame and carries raw bytes after it.
 */
const MAX_FRAME = 16 * 1024 * 1024

export function encodeFrame(message: unknown): Uint8Array {
  const body = Buffer.from(JSON.stringify(message))
  const out = Buffer.allocUnsafe(4 + body.length)
  out.writeUInt32BE(body.length, 0)
  body.copy(out, 4)
  return out
}

/**
 * Collects bytes and hands out whole frames. `rest()` returns what arrived after the last frame
 * taken (the raw bytes of a proxy stream).
 */
export class FrameReader {
  #buf: Buffer = Buffer.alloc(0)

  /** Adds bytes; returns the frames now complete. Throws RangeError on an oversized frame. */
  push(chunk: Uint8Array, max = Infinity): unknown[] {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : Buffer.from(chunk)
    const out: unknown[] = []
    while (out.length < max && this.#buf.length >= 4) {
      const len = this.#buf.readUInt32BE(0)
      if (len > MAX_FRAME) throw new RangeError(`cluster frame of ${len} bytes is over the ${MAX_FRAME} limit`)
      if (this.#buf.length < 4 + len) break
      out.push(JSON.parse(this.#buf.subarray(4, 4 + len).toString()))
      this.#buf = this.#buf.subarray(4 + len)
    }
    return out
  }

  rest(): Uint8Array {
    const rest = this.#buf
    this.#buf = Buffer.alloc(0)
    return rest
  }
}

/** What a frame writer needs from a socket: `write` returns the bytes it took (Bun drops the rest). */
export interface FrameSink {
  write(data: Uint8Array): number
}

/**
 * Sends frames on a socket, queueing what it did not take until `drain()` (call it from the socket's
 * drain). `queued` is the bytes waiting: a sender of droppable messages (events) checks it first.
 */
export function frameWriter(socket: FrameSink): { send(message: unknown): void; drain(): void; readonly queued: number } {
  const queue: Uint8Array[] = []
  let queued = 0
  const flush = () => {
    while (queue.length) {
      const chunk = queue[0]!
      const n = Math.max(socket.write(chunk), 0)
      queued -= Math.min(n, chunk.length)
      if (n >= chunk.length) queue.shift()
      else return void (queue[0] = chunk.subarray(n))
    }
  }
  return {
    send(message) {
      const frame = encodeFrame(message)
      queue.push(frame)
      queued += frame.length
      if (queue.length === 1) flush()
    },
    drain: flush,
    get queued() {
      return queued
    },
  }
}
