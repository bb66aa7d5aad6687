// Benchmark origin for bench/tls and bench/tunnel: bench/upstream.ts's routes, optionally over TLS,
// plus a streamed bulk download.
//   GET /hello -> "Hello, World!" (13 bytes)   GET /64k -> 65,536 bytes   GET /bytes/N -> N bytes (1 MiB chunks)
// Usage: PORT=28501 [TLS_CERT=cert.pem TLS_KEY=key.pem] bun bench/lib/bulk-upstream.ts   (binds 127.0.0.1 only)
const hello = 'Hello, World!'
const body64k = new Uint8Array(65536).fill(0x61) // 'a' * 65536
const CHUNK = 1 << 20
const chunk = new Uint8Array(CHUNK).fill(0x61)

function bytes(total: number): Response {
  let left = total
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (left <= 0) return controller.close()
      const n = Math.min(left, CHUNK)
      controller.enqueue(n === CHUNK ? chunk : chunk.subarray(0, n))
      left -= n
    },
  })
  return new Response(body, { headers: { 'content-type': 'application/octet-stream', 'content-length': String(total) } })
}

const tls = process.env.TLS_CERT && process.env.TLS_KEY ? { cert: Bun.file(process.env.TLS_CERT), key: Bun.file(process.env.TLS_KEY) } : undefined
const server = Bun.serve({
  hostname: '127.0.0.1',
  port: Number(process.env.PORT ?? 28501),
  ...(tls ? { tls } : {}),
  fetch(req) {
    const path = new URL(req.url).pathname
    if (path === '/hello') return new Response(hello, { headers: { 'content-type': 'text/plain' } })
    if (path === '/64k') return new Response(body64k, { headers: { 'content-type': 'application/octet-stream' } })
    const m = /^\/bytes\/(\d+)$/.exec(path)
    if (m) return bytes(Number(m[1]))
    return new Response('not found\n', { status: 404 })
  },
})
console.log(`upstream listening on ${tls ? 'https' : 'http'}://127.0.0.1:${server.port}`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => (server.stop(true), process.exit(0)))

export {} // a module, not a global script
