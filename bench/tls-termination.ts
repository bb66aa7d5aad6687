// bench/tls-termination.ts: ways to terminate TLS after the TLS front has read the ClientHello (SNI
// peek), HTTPS/1.1 keep-alive under wrk. Each way answers a fixed 2-byte response per request head,
// so only the TLS termination differs (Bun.serve also builds Request/Response objects: its number is
// the ceiling of the path warren used before, not a like-for-like one):
//   serve   : front Bun.listen relays into an internal Bun.serve({ tls, http2: true }) (warren before issue 13)
//   listen  : front Bun.listen relays into an internal TLS Bun.listen (one certificate per listener)
//   nodetls : node:tls TLSSocket over a Duplex fed by the front socket, in process (no relay hop)
// `socket.upgradeTLS` after the peek is not a way: the ClientHello was consumed and the handshake
// fails (docs/benchmarks.md), so it is not measured.
//
// Usage: bun bench/tls-termination.ts                  ROUNDS=3 DURATION=4s CONNS=50 PORT=29443
// Prints one line per round and way, then the median per way. Needs wrk and openssl.
import { Duplex } from 'node:stream'
import * as tls from 'node:tls'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const WAYS = ['serve', 'listen', 'nodetls'] as const
type Way = (typeof WAYS)[number]
const PORT = Number(process.env.PORT ?? 29443)
const ANSWER = Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')

/** One answer per request head that ends in `chunk` (wrk writes whole heads). */
function answers(chunk: Uint8Array): Buffer {
  let n = 0
  for (let i = 3; i < chunk.length; i++) if (chunk[i] === 10 && chunk[i - 1] === 13 && chunk[i - 2] === 10 && chunk[i - 3] === 13) n++
  return n === 1 ? ANSWER : Buffer.concat(Array<Buffer>(n).fill(ANSWER))
}

function serveWay(way: Way, cert: string, key: string): void {
  let target = 0
  if (way === 'serve') target = Bun.serve({ hostname: '127.0.0.1', port: 0, tls: [{ cert, key }], http2: true, fetch: () => new Response('ok') }).port!
  if (way === 'listen')
    target = Bun.listen({ hostname: '127.0.0.1', port: 0, tls: { cert, key, ALPNProtocols: Buffer.from('\x08http/1.1') }, socket: { data: (s, d) => void s.write(answers(d)) } }).port
  const context = tls.createSecureContext({ cert, key })
  type Conn = { first: boolean; peer?: { write(b: Uint8Array): number; end(): void }; duplex?: Duplex }
  Bun.listen<Conn>({
    hostname: '127.0.0.1',
    port: PORT,
    socket: {
      open(s) {
        s.data = { first: true }
      },
      async data(s, d) {
        if (!s.data.first) return void (s.data.duplex ? s.data.duplex.push(d) : s.data.peer?.write(d))
        s.data.first = false
        if (way === 'nodetls') {
          const duplex = new Duplex({ read() {}, write: (c, _e, cb) => (s.write(c), cb()) })
          s.data.duplex = duplex
          duplex.push(d)
          const t = new tls.TLSSocket(duplex, { isServer: true, secureContext: context, ALPNProtocols: ['http/1.1'] })
          t.on('data', (c: Buffer) => t.write(answers(c)))
          return
        }
        s.pause()
        s.data.peer = await Bun.connect({ hostname: '127.0.0.1', port: target, socket: { data: (_u, c) => void s.write(c), close: () => void s.end() } })
        s.data.peer.write(d)
        s.resume()
      },
      close(s) {
        s.data.peer?.end()
        s.data.duplex?.destroy()
      },
    },
  })
}

async function main(): Promise<void> {
  const way = process.argv[2] as Way | undefined
  if (way) {
    serveWay(way, readFileSync(process.argv[3]!, 'utf8'), readFileSync(process.argv[4]!, 'utf8'))
    return console.log('ready')
  }
  const dir = mkdtempSync(join(tmpdir(), 'tls-termination-'))
  const [certPath, keyPath] = [join(dir, 'cert.pem'), join(dir, 'key.pem')]
  Bun.spawnSync(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=bench.localhost', '-keyout', keyPath, '-out', certPath])
  const rounds = Number(process.env.ROUNDS ?? 3)
  const results = new Map<Way, number[]>(WAYS.map((w) => [w, []]))
  for (let round = 1; round <= rounds; round++)
    for (const w of WAYS) {
      const server = Bun.spawn([process.execPath, import.meta.path, w, certPath, keyPath], { stdout: 'pipe' })
      const reader = server.stdout.getReader()
      await reader.read()
      const wrk = (duration: string) =>
        Bun.spawn(['wrk', '-t1', `-c${process.env.CONNS ?? 50}`, `-d${duration}`, `https://localhost:${PORT}/`], { stdout: 'pipe' })
      await wrk('1s').exited
      const run = wrk(process.env.DURATION ?? '4s')
      const out = await new Response(run.stdout).text()
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0)
      results.get(w)!.push(rps)
      console.log(`round ${round} ${w.padEnd(8)} ${Math.round(rps)} req/s`)
      server.kill()
      await server.exited
    }
  for (const [w, all] of results) {
    const sorted = [...all].sort((a, b) => a - b)
    console.log(`median ${w.padEnd(8)} ${Math.round(sorted[Math.floor(sorted.length / 2)]!)} req/s  (${all.map(Math.round).join(' / ')})`)
  }
}

await main()
