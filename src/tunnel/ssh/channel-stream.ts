import type { ServerChannel } from 'ssh2'
import type { TunnelStream } from '../../endpoints/endpoint.ts'
import type { StreamCloseCause } from '../mux.ts'

/**
 * The layer of ssh2's `Channel` (ssh2 1.x, lib/Channel.js) under its Duplex interface, which the data
 * path uses directly: `_write` cuts data into CHANNEL_DATA packets within the SSH window (ssh2 copies
 * it into each packet) and keeps what does not fit until the client's WINDOW_ADJUST, then calls back;
 * ssh2 hands each CHANNEL_DATA payload to `push`, where `false` holds back the window (`_read` grants
 * it again). Going through the Duplex cost a stream write, a copy and a `data` event per chunk.
 */
interface ChannelInternals {
  readonly outgoing: { readonly window: number; readonly state: string }
  _write(data: Buffer, encoding: null, done: () => void): void
  push(chunk: Buffer | null): boolean
  _read(size: number): void
  readable: boolean
}

function sent(): void {}

/**
 * A forwarded-tcpip channel of an SSH session, shaped as a tunnel stream so the edge's HTTP client and
 * relays use it exactly like an agent's muxado stream.
 *
 * Backpressure both ways: once the SSH window is spent, `write` keeps the rest (a copy) and takes
 * nothing more until the client's WINDOW_ADJUST sent it, then `ondrain`; while paused, what the
 * client still sends within its window waits here and ssh2 grants no more window until `resume`.
 */
export class ChannelStream implements TunnelStream {
  ondata: (chunk: Uint8Array) => void = () => {}
  ondrain: () => void = () => {}
  onend: () => void = () => {}
  onclose: () => void = () => {}
  readonly resetCode = undefined
  readonly #channel: ServerChannel
  readonly #raw: ChannelInternals
  /** Data ssh2 keeps for lack of window (and our EOF waits for). */
  #unsent = false
  #wantDrain = false
  #paused = false
  /** What arrived while paused; `null` is the client's EOF. */
  #held: (Buffer | null)[] = []
  #localEnded = false
  #remoteEnded = false
  #closeCause: StreamCloseCause | undefined

  constructor(channel: ServerChannel) {
    this.#channel = channel
    this.#raw = channel as unknown as ChannelInternals
    // An own property, so ssh2's CHANNEL_DATA and CHANNEL_EOF land here instead of the Readable.
    this.#raw.push = (chunk) => this.#onPush(chunk)
    channel.on('close', () => this.#finish(this.#localEnded && this.#remoteEnded ? 'ended' : 'reset'))
    channel.on('error', () => this.#finish('reset'))
  }

  get closed(): boolean {
    return this.#closeCause !== undefined
  }

  get closeCause(): StreamCloseCause | undefined {
    return this.#closeCause
  }

  write(chunk: Uint8Array): number {
    if (this.#closeCause || this.#localEnded) return 0
    if (this.#unsent) {
      this.#wantDrain = true
      return 0
    }
    const raw = this.#raw
    if (raw.outgoing.state !== 'open') return 0
    if (chunk.length <= raw.outgoing.window) {
      // All of it goes out now, copied into the packets: the caller's buffer (only lent) is not kept.
      raw._write(chunk instanceof Buffer ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length), null, sent)
    } else {
      // The window is spent: ssh2 keeps the rest until the client grants more, so it keeps a copy.
      this.#unsent = true
      raw._write(Buffer.from(chunk), null, () => this.#onSent())
    }
    return chunk.length
  }

  /**
   * Half-closes our side: EOF once what is queued has gone out. (ssh2's `end()` on a server channel
   * also closes the channel, which would cut the reply a half-closed TCP client still waits for.)
   */
  end(): void {
    if (this.#closeCause || this.#localEnded) return
    this.#localEnded = true
    if (!this.#unsent) this.#eof()
  }

  terminate(): void {
    if (this.#closeCause) return
    this.#channel.close()
    this.#finish('terminated')
  }

  pause(): void {
    this.#paused = true
  }

  resume(): void {
    if (!this.#paused) return
    this.#paused = false
    while (this.#held.length > 0 && !this.#paused && !this.#closeCause) this.#deliver(this.#held.shift()!)
    // ssh2 stopped granting window when a chunk arrived while paused; `_read` grants it again.
    if (!this.#paused && this.#held.length === 0) this.#raw._read(0)
  }

  #onPush(chunk: Buffer | null): boolean {
    // ssh2 sends `close` only once it sees the readable side ended (the Readable's own flag).
    if (chunk === null) this.#raw.readable = false
    if (this.#paused || this.#held.length > 0) {
      this.#held.push(chunk)
      return false
    }
    this.#deliver(chunk)
    return !this.#paused
  }

  #deliver(chunk: Buffer | null): void {
    if (chunk) return this.ondata(chunk)
    this.#remoteEnded = true
    this.onend()
  }

  #onSent(): void {
    this.#unsent = false
    if (this.#closeCause) return
    if (this.#localEnded) return this.#eof()
    if (!this.#wantDrain) return
    this.#wantDrain = false
    this.ondrain()
  }

  #eof(): void {
    this.#channel.eof()
    if (this.#remoteEnded) this.#channel.close()
  }

  #finish(cause: StreamCloseCause): void {
    if (this.#closeCause) return
    this.#closeCause = cause
    this.onclose()
  }
}
