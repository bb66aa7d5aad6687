// bench/tunnel.d/capture-micro.ts: the inspector capture's cost per proxied /hello, in process (no sockets):
// one keep-alive connection's request and response bytes, as the agent's observer sees them, fed to an
// HttpTap; best of 30 rounds of 20,000 exchanges. Load-independent enough to compare two trees:
//
//   bun bench/tunnel.d/capture-micro.ts [SRC_ROOT (default: this tree)]
//
// Prints ns per exchange for capturing only, and for capturing then reading every exchange once as the
// inspector's list does (id, method, path, status, headers).
import { resolve } from 'node:path'

const root = resolve(process.argv[2] ?? `${import.meta.dir}/../..`)
const { CaptureStore, HttpTap } = (await import(`${root}/src/inspect/capture.ts`)) as typeof import('../../src/inspect/capture.ts')

// What the edge sends and the upstream answers for wrk's /hello (heads as they cross the tunnel).
const request = Buffer.from(
  'GET /hello HTTP/1.1\r\nHost: a.alice.warren.localhost\r\nUser-Agent: wrk\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Host: a.alice.warren.localhost\r\nX-Forwarded-Proto: http\r\n\r\n',
)
const response = Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: text/plain;charset=utf-8\r\nDate: Mon, 07 Dec 2026 20:00:00 GMT\r\nContent-Length: 13\r\n\r\nHello, World!')
const N = 20_000

function round(read: boolean): number {
  const store = new CaptureStore()
  const tap = new HttpTap(store, { name: 'a', url: 'http://a.alice.warren.localhost' }, '127.0.0.1:1')
  // Fresh Buffers per exchange, as sockets hand them out.
  const reqs = Array.from({ length: N }, () => Buffer.from(request))
  const ress = Array.from({ length: N }, () => Buffer.from(response))
  const started = Bun.nanoseconds()
  let sink = 0
  for (let i = 0; i < N; i++) {
    tap.client(reqs[i]!)
    tap.upstream(ress[i]!)
  }
  if (read) for (const e of store.list()) sink += e.id.length + e.request.method.length + e.request.uri.length + (e.response?.status ?? 0) + e.request.headers.length
  const ns = (Bun.nanoseconds() - started) / N
  if (store.list().length !== Math.min(N, store.limits.maxEntries) || (read && sink === 0)) throw new Error('the tap did not capture')
  return ns
}

for (const read of [false, true]) {
  let best = Infinity
  for (let r = 0; r < 30; r++) best = Math.min(best, round(read))
  console.log(`${read ? 'capture + read every kept exchange' : 'capture only'}: ${best.toFixed(0)} ns per exchange (best of 30 x ${N})`)
}
