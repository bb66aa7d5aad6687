import type { Socket } from 'node:net'

/** A batch this large goes out at once rather than waiting for the end of the tick. */
const FLUSH_BYTES = 256 * 1024

/**
 * Makes the writes a socket gets during one event-loop turn go out as one `write`.
 *
 * ssh2 writes every SSH packet in pieces (AES-GCM: length, ciphertext, tag; three `socket.write`
 * calls), and every channel write is a packet: under many small requests that was a write syscall per
 * piece, 38 % of the front door's samples in node:net's `writeBuffered`. Gathering a turn's pieces
 * costs one copy of the bytes and at most one turn of latency; the SSH window, not the socket's
 * buffer, is what limits ssh2's channels, so the return value keeps node:net's meaning for the batch.
 */
export function batchSocketWrites(socket: Socket): void {
  const write = socket.write.bind(socket) as (data: Uint8Array | string, ...rest: unknown[]) => boolean
  let pieces: Uint8Array[] = []
  let bytes = 0
  let scheduled = false
  let lastResult = true

  function flush(): void {
    scheduled = false
    if (pieces.length === 0) return
    const batch = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, bytes)
    pieces = []
    bytes = 0
    // A socket that closed meanwhile takes nothing; ssh2 checks writability per piece the same way.
    if (!socket.destroyed && socket.writable) lastResult = write(batch)
  }

  socket.write = function batchedWrite(data: Uint8Array | string, ...rest: unknown[]): boolean {
    // Strings and callbacks are not what ssh2 writes after the handshake; they keep their exact meaning.
    if (typeof data === 'string' || rest.length > 0) {
      flush()
      return write(data, ...rest)
    }
    pieces.push(data)
    bytes += data.length
    if (bytes >= FLUSH_BYTES) flush()
    else if (!scheduled) {
      scheduled = true
      setImmediate(flush)
    }
    return lastResult
  } as Socket['write']
  // Whatever waits in the batch goes out before the socket's FIN.
  const end = socket.end.bind(socket) as (...args: unknown[]) => Socket
  socket.end = function batchedEnd(...args: unknown[]): Socket {
    flush()
    return end(...args)
  } as Socket['end']
}
