import type { MuxStream } from '../tunnel/mux.ts'

/**
 * Writes small messages (RPC JSON, an error page) on a stream in order, keeping what the window or
 * the connection did not take until `drain`; `end()` sends FIN once everything is out. It owns the
 * stream's `ondrain`.
 */
export class StreamWriter {
  readonly #stream: MuxStream
  #queue: Uint8Array[] = []
  #ending = false
  #queued = 0
  #waiting = false
  /** Called when the queue empties after a write that could not go out at once (resume the producer). */
  onflushed: () => void = () => {}

  constructor(stream: MuxStream) {
    this.#stream = stream
    stream.ondrain = () => this.#flush()
  }

  write(data: Uint8Array | string): void {
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data
    this.#queue.push(bytes)
    this.#queued += bytes.length
    this.#flush()
  }

  /** Bytes written but not yet taken by the stream (its window or the connection is full). */
  get queued(): number {
    return this.#queued
  }

  end(): void {
    this.#ending = true
    this.#flush()
  }

  #flush(): void {
    while (this.#queue.length) {
      const chunk = this.#queue[0]!
      const n = this.#stream.write(chunk)
      this.#queued -= n
      if (n < chunk.length) {
        this.#queue[0] = chunk.subarray(n)
        this.#waiting = true
        return
      }
      this.#queue.shift()
    }
    if (this.#waiting) {
      this.#waiting = false
      this.onflushed()
    }
    if (this.#ending) this.#stream.end()
  }
}

/** Joins two byte arrays (returns `b` when `a` is empty). */
export function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBufferLike> {
  if (a.length === 0) return b
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}

/** Finds `needle` in `haystack`; -1 when absent. */
export function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer
    return i
  }
  return -1
}
