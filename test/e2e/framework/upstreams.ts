import type { Server } from 'bun'

export interface SeenRequest {
  method: string
  path: string
  headers: Record<string, string>
  bodyBytes: number
}

/**
 * A real HTTP upstream on a free loopback port that records what it saw and answers in JSON.
 * `/echo` returns the request as JSON; `/status/N` answers N; `/bytes/N` streams N bytes;
 * `/spoof` sets a Warren-Error-Code header itself; `/count` counts an uploaded body; websockets echo.
 */
export function startUpstream(name = 'upstream'): Server<undefined> & { seen: SeenRequest[] } {
  const seen: SeenRequest[] = []
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    maxRequestBodySize: 8 * 1024 ** 3,
    idleTimeout: 60,
    async fetch(req, srv) {
      const url = new URL(req.url)
      if (req.headers.get('upgrade')?.toLowerCase() === 'websocket') {
        if (srv.upgrade(req, { data: undefined, headers: { 'x-upstream': name } })) return undefined
        return new Response('upgrade failed', { status: 400 })
      }
      let bodyBytes = 0
      if (req.body) for await (const chunk of req.body) bodyBytes += chunk.length
      const headers: Record<string, string> = {}
      req.headers.forEach((v, k) => (headers[k] = v))
      seen.push({ method: req.method, path: url.pathname + url.search, headers, bodyBytes })
      if (url.pathname.startsWith('/status/')) return new Response(`status ${url.pathname.slice(8)}`, { status: Number(url.pathname.slice(8)) })
      if (url.pathname === '/spoof') return new Response('spoofed', { status: 200, headers: { 'warren-error-code': 'ERR_WARREN_3200', connection: 'x-secret', 'x-secret': '1' } })
      if (url.pathname.startsWith('/bytes/')) {
        let left = Number(url.pathname.slice(7))
        const chunk = new Uint8Array(64 * 1024).fill(97)
        return new Response(
          new ReadableStream({
            pull(controller) {
              if (left <= 0) return controller.close()
              const n = Math.min(left, chunk.length)
              controller.enqueue(chunk.subarray(0, n))
              left -= n
            },
          }),
        )
      }
      return Response.json({ upstream: name, method: req.method, path: url.pathname + url.search, headers, bodyBytes })
    },
    websocket: {
      message(ws, message) {
        if (message === 'close-me') return ws.close(4001, 'bye')
        ws.send(message)
      },
      close() {},
    },
  }) as Server<undefined> & { seen: SeenRequest[] }
  server.seen = seen
  return server
}
