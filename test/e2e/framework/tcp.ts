import type { TCPSocketListener } from 'bun'
import { createHash } from 'node:crypto'
import * as tls from 'node:tls'

/** A TCP echo server on a free loopback port (with write backpressure handled). */
export function startEchoServer(): TCPSocketListener<{ queue: Uint8Array[] }> {
  return Bun.listen<{ queue: Uint8Array[] }>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(s) {
        s.data = { queue: [] }
      },
      data(s, chunk) {
        if (s.data.queue.length) return void s.data.queue.push(chunk.slice())
        const n = s.write(chunk)
        if (n < chunk.length) {
          s.data.queue.push(chunk.slice(Math.max(n, 0)))
          s.pause()
        }
      },
      drain(s) {
        while (s.data.queue.length) {
          const c = s.data.queue[0]!
          const n = s.write(c)
          if (n < c.length) return void (s.data.queue[0] = c.subarray(Math.max(n, 0)))
          s.data.queue.shift()
        }
        s.resume()
      },
    },
  })
}

/** Connects, sends `total` pseudo-random bytes, reads the echo; returns sha256 of both sides. */
export async function echoRoundTrip(port: number, total: number, hostname = '127.0.0.1'): Promise<{ sent: string; received: string; receivedBytes: number }> {
  const sent = createHash('sha256')
  const received = createHash('sha256')
  let receivedBytes = 0
  const block = new Uint8Array(256 * 1024)
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 0xff
  return await new Promise((resolve, reject) => {
    let written = 0
    let pending: Uint8Array | undefined
    const pump = (s: { write(b: Uint8Array): number }) => {
      while (written < total) {
        const chunk = pending ?? block.subarray(0, Math.min(block.length, total - written))
        const n = s.write(chunk)
        if (n > 0) sent.update(chunk.subarray(0, n))
        written += Math.max(n, 0)
        if (n < chunk.length) {
          pending = chunk.subarray(Math.max(n, 0))
          return
        }
        pending = undefined
      }
    }
    void Bun.connect({
      hostname,
      port,
      socket: {
        open: pump,
        drain: pump,
        data(s, chunk) {
          received.update(chunk)
          receivedBytes += chunk.length
          if (receivedBytes >= total) s.end()
        },
        close: () => resolve({ sent: sent.digest('hex'), received: received.digest('hex'), receivedBytes }),
        error: (_s, e) => reject(e),
      },
    }).catch(reject)
  })
}

/**
 * A TLS server with its own certificate that answers the first chunk it reads with that chunk and
 * closes: the backend behind a `tls://` passthrough endpoint (the edge never holds its key).
 */
export async function startTlsAnswerOnce(cert: { cert: string; key: string }): Promise<{ port: number; close(): void }> {
  const server = tls.createServer({ cert: cert.cert, key: cert.key }, (s) => s.once('data', (d) => s.end(d)))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { port: (server.address() as { port: number }).port, close: () => void server.close() }
}

/** One TLS connection that writes `message` and reads to the end: what came back and the certificate's CN. */
export function tlsRoundTrip(o: { host: string; port: number; servername: string; ca: string; message: string }): Promise<{ text: string; subject: string }> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: o.host, port: o.port, servername: o.servername, ca: o.ca }, () => sock.write(o.message))
    let text = ''
    sock.on('data', (d) => (text += d))
    sock.on('end', () => resolve({ text, subject: String(sock.getPeerCertificate().subject?.CN) }))
    sock.on('error', reject)
  })
}
