import type { ServerChannel } from 'ssh2'
import type { TunnelStream } from '../../endpoints/endpoint.ts'
import type { StreamCloseCause } from '../mux.ts'

/**
 * A forwarded-tcpip channel of an SSH session, shaped as a tunnel stream so the edge's HTTP client and
 * relays use it exactly like an agent's muxado stream.
 *
 * Backpressure both ways: `write` takes nothing while the channel's buffer is over its high-water mark
 * (the SSH window is spent) and `ondrain` follows; `pause` stops reading, so ssh2 stops granting window
 * and the client stops sending.
 */
export class ChannelStream implements TunnelStream {
  ondata: (chunk: Uint8Array) => void = () => {}
  ondrain: () => void = () => {}
  onend: () => void = () => {}
  onclose: () => void = () => {}
  readonly resetCode = undefined
  readonly #channel: ServerChannel
  #wantDrain = false
  #localEnded = false
  #remoteEnded = false
  #closeCause: StreamCloseCause | undefined

  constructor(channel: ServerChannel) {
    this.#channel = channel
    channel.on('data', (chunk: Buffer) => this.ondata(chunk))
    channel.on('end', () => {
      this.#remoteEnded = true
      this.onend()
    })
    channel.on('drain', () => {
      if (!this.#wantDrain || this.#closeCause) return
      this.#wantDrain = false
      this.ondrain()
    })
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
    if (this.#channel.writableNeedDrain) {
      this.#wantDrain = true
      return 0
    }
    // The caller's buffer is only lent for this call (Bun reuses socket buffers): the channel keeps a copy.
    if (!this.#channel.write(Buffer.from(chunk))) this.#wantDrain = true
    return chunk.length
  }

  /**
   * Half-closes our side: EOF once what is queued has gone out. (ssh2's `end()` on a server channel
   * also closes the channel, which would cut the reply a half-closed TCP client still waits for.)
   */
  end(): void {
    if (this.#closeCause || this.#localEnded) return
    this.#localEnded = true
    const eof = () => {
      this.#channel.eof()
      if (this.#remoteEnded) this.#channel.close()
    }
    if (this.#channel.writableLength === 0) eof()
    else this.#channel.once('drain', eof)
  }

  terminate(): void {
    if (this.#closeCause) return
    this.#channel.close()
    this.#finish('terminated')
  }

  pause(): void {
    this.#channel.pause()
  }

  resume(): void {
    this.#channel.resume()
  }

  #finish(cause: StreamCloseCause): void {
    if (this.#closeCause) return
    this.#closeCause = cause
    this.onclose()
  }
}
