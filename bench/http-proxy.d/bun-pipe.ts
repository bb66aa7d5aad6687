// The floor of any proxy on Bun's sockets (design (d) in /work/shared/reference/http-engine.md): each
// client connection gets its own upstream connection and the bytes go across as read, both ways, with
// no parsing, routing or header rewriting. Per request it does what warren's relay cannot do less of
// (two reads, two writes, two JS callbacks), so warren's CPU per request minus this one's is what
// warren's own code costs; this one's minus nginx's is what Bun's socket layer costs.
// Usage: PORT=28487 UPSTREAM_PORT=28480 bun bench/http-proxy.d/bun-pipe.ts
import type { Socket } from 'bun'

interface Side {
  peer: Socket<Side> | undefined
  /** Bytes the peer did not take yet (Bun's write drops what the kernel does not accept). */
  queued: Uint8Array[]
  /** Bytes read before the upstream connection was there. */
  early: Uint8Array[]
}

const upstreamPort = Number(process.env.UPSTREAM_PORT ?? 28480)

function send(to: Socket<Side>, from: Socket<Side>, bytes: Uint8Array): void {
  const out = to.data.queued
  if (out.length) {
    out.push(bytes)
    return
  }
  const n = to.write(bytes)
  if (n < bytes.length) {
    out.push(bytes.subarray(Math.max(n, 0)))
    from.pause()
  }
}

const handlers = {
  data(socket: Socket<Side>, data: Buffer) {
    const peer = socket.data.peer
    if (peer) send(peer, socket, data)
    else socket.data.early.push(data)
  },
  drain(socket: Socket<Side>) {
    const out = socket.data.queued
    while (out.length) {
      const chunk = out[0]!
      const n = socket.write(chunk)
      if (n < chunk.length) {
        out[0] = chunk.subarray(Math.max(n, 0))
        return
      }
      out.shift()
    }
    socket.data.peer?.resume()
  },
  close(socket: Socket<Side>) {
    socket.data.peer?.end()
  },
}

const listener = Bun.listen<Side>({
  hostname: '127.0.0.1',
  port: Number(process.env.PORT ?? 28487),
  socket: {
    ...handlers,
    open(client) {
      client.data = { peer: undefined, queued: [], early: [] }
      void Bun.connect<Side>({
        hostname: '127.0.0.1',
        port: upstreamPort,
        data: { peer: client, queued: [], early: [] },
        socket: {
          ...handlers,
          open(upstream) {
            upstream.setNoDelay(true)
            client.data.peer = upstream
            for (const chunk of client.data.early.splice(0)) send(upstream, client, chunk)
          },
          connectError() {
            client.end()
          },
        },
      })
    },
  },
})
console.log(`bun-pipe listening on 127.0.0.1:${listener.port} -> 127.0.0.1:${upstreamPort}`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => (listener.stop(true), process.exit(0)))

export {}
