// Reference point for bench/http-proxy (target "bunfetch"): the thinnest possible Bun reverse proxy,
// Bun.serve + fetch() with nothing else (no Host routing, no policy, no header rewriting), as in the
// peer baseline. It shows how much of warren's cost is Bun's fetch() data path itself.
// Usage: PORT=28486 UPSTREAM=http://127.0.0.1:28480 bun bench/http-proxy.d/bun-fetch-proxy.ts
const upstream = process.env.UPSTREAM ?? 'http://127.0.0.1:28480'

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: Number(process.env.PORT ?? 28486),
  async fetch(req) {
    const url = new URL(req.url)
    const res = await fetch(upstream + url.pathname + url.search, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      redirect: 'manual',
      decompress: false,
    })
    return new Response(res.body, { status: res.status, headers: res.headers })
  },
})
console.log(`bun fetch proxy on http://127.0.0.1:${server.port} -> ${upstream}`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => (server.stop(true), process.exit(0)))

export {} // a module, not a global script (keeps tsc from merging the bench files)
