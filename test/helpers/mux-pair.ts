import type { Socket } from 'bun'
import { MuxSession, type MuxStream } from '../../src/tunnel/mux.ts'

/**
 * Two muxado sessions over a real loopback socket: `opener` opens streams (an edge, or a link's
 * dialer; role server), the acceptor (role client, an agent) hands each stream it accepts to
 * `onStream`. `close()` cuts the connection.
 */
export async function sessionPair(onStream: (s: MuxStream) => void): Promise<{ opener: MuxSession; close(): void }> {
  const server = Bun.listen<{ session: MuxSession }>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(socket) {
        socket.data = { session: new MuxSession(socket, { onStream, onClose: () => {} }, { role: 'client' }) }
      },
      data: (socket, chunk) => socket.data.session.feed(chunk),
      drain: (socket) => socket.data.session.drain(),
      close: (socket) => socket.data.session.transportClosed(),
      error: () => {},
    },
  })
  let opener: MuxSession | undefined
  const socket: Socket<undefined> = await Bun.connect({
    hostname: '127.0.0.1',
    port: server.port,
    socket: {
      open(s) {
        opener = new MuxSession(s, { onStream: (st) => st.terminate(), onClose: () => {} }, { role: 'server' })
      },
      data: (_s, chunk) => opener!.feed(chunk),
      drain: () => opener!.drain(),
      close: () => opener!.transportClosed(),
      error: () => {},
    },
  })
  return {
    opener: opener!,
    close() {
      socket.terminate()
      server.stop(true)
    },
  }
}
