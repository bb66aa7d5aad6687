// Benchmark upstream for bench/http-proxy: the same Bun origin the peers were measured against.
//   GET /hello -> "Hello, World!" (13 bytes)   GET /64k -> 65,536 bytes
// Usage: PORT=28080 bun bench/upstream.ts   (binds 127.0.0.1 only)
const hello = 'Hello, World!'
const body64k = new Uint8Array(65536).fill(0x61) // 'a' * 65536

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: Number(process.env.PORT ?? 28080),
  fetch(req) {
    const path = new URL(req.url).pathname
    if (path === '/hello') return new Response(hello, { headers: { 'content-type': 'text/plain' } })
    if (path === '/64k') return new Response(body64k, { headers: { 'content-type': 'application/octet-stream' } })
    return new Response('not found\n', { status: 404 })
  },
})
console.log(`upstream listening on http://127.0.0.1:${server.port}`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => (server.stop(true), process.exit(0)))

export {} // a module, not a global script (keeps tsc from merging the bench files)
