import type { Socket, TCPSocketListener } from 'bun'

/** One request head a raw upstream received, and the connection it came on (0, 1, …). */
export interface RawRequest {
  head: string
  conn: number
}

export interface RawUpstream {
  readonly port: number
  /** Connections accepted so far. */
  readonly connections: number
  readonly requests: RawRequest[]
  stop(): void
}

type RawSocket = Socket<{ id: number; buf: string }>

/**
 * A loopback upstream that answers each request head with whatever `respond` writes, byte for byte,
 * so tests can send what Bun.serve never would (bad framing, interim responses, early closes).
 * Only bodiless requests are understood: it waits for the blank line and calls `respond` once.
 */
export function rawUpstream(respond: (req: RawRequest, socket: RawSocket) => void): RawUpstream {
  let connections = 0
  const requests: RawRequest[] = []
  const sockets = new Set<RawSocket>()
  const listener: TCPSocketListener<{ id: number; buf: string }> = Bun.listen<{ id: number; buf: string }>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(socket) {
        socket.data = { id: connections++, buf: '' }
        sockets.add(socket)
      },
      data(socket, data) {
        socket.data.buf += data.toString('latin1')
        for (;;) {
          const end = socket.data.buf.indexOf('\r\n\r\n')
          if (end === -1) return
          const req = { head: socket.data.buf.slice(0, end + 4), conn: socket.data.id }
          socket.data.buf = socket.data.buf.slice(end + 4)
          requests.push(req)
          respond(req, socket)
        }
      },
      close(socket) {
        sockets.delete(socket)
      },
    },
  })
  return {
    port: listener.port,
    get connections() {
      return connections
    },
    requests,
    stop() {
      for (const s of sockets) s.terminate()
      listener.stop(true)
    },
  }
}

/**
 * Deterministic bytes: the same `(size, chunk, seed)` always gives the same stream. Each piece is a
 * pseudo-random block stamped with its index, so reordered or repeated pieces change the digest.
 */
export function patternStream(
  size: number,
  options: { chunk?: number; seed?: number } = {},
): ReadableStream<Uint8Array> {
  const chunk = options.chunk ?? 64 * 1024
  const block = new Uint8Array(chunk)
  let x = options.seed ?? 1
  for (let i = 0; i < chunk; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    block[i] = x >>> 16
  }
  let sent = 0
  let index = 0
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= size) {
        controller.close()
        return
      }
      const n = Math.min(chunk, size - sent)
      const out = block.slice(0, n)
      if (n >= 4) new DataView(out.buffer).setUint32(0, index >>> 0)
      index++
      sent += n
      controller.enqueue(out)
    },
  })
}

/** SHA-256 of a stream, consumed chunk by chunk; also returns the byte count. */
export async function digestStream(
  stream: ReadableStream<Uint8Array>,
): Promise<{ hex: string; bytes: number }> {
  const hasher = new Bun.CryptoHasher('sha256')
  let bytes = 0
  for await (const chunk of stream) {
    hasher.update(chunk)
    bytes += chunk.length
  }
  return { hex: hasher.digest('hex'), bytes }
}
