// bench/tls-termination.ts: ways to terminate TLS after the TLS front has read the ClientHello (SNI
// peek), HTTPS/1.1 keep-alive under wrk. Each way answers a fixed 2-byte response per request head,
// so only the TLS termination differs (Bun.serve also builds Request/Response objects: its number is
// the ceiling of the path warren used before, not a like-for-like one):
//   serve   : front Bun.listen relays into an internal Bun.serve({ tls, http2: true }) (warren before issue 13)
//   listen  : front Bun.listen relays into an internal TLS Bun.listen (one certificate per listener)
//   unix    : as listen, the internal TLS Bun.listen on a unix socket instead of loopback TCP
//   nodetls : node:tls TLSSocket over a Duplex fed by the front socket, in process (no relay hop)
//   direct  : a TLS Bun.listen on the public port itself, no front and no peek: the floor the hop
//             is measured against (it serves one certificate and cannot route passthrough by SNI)
//   sni     : as direct, the certificate picked per SNI by the socket handler `serverName` (not in
//             bun-types; node:tls's SNICallback is built on it): returns a node:tls secure context's
//             `.context`, or undefined for the listener's own certificate
//   upgrade : a plain Bun.listen whose `open()` calls `socket.upgradeTLS` before any byte is read (no
//             hop; the original socket's `data` handler still sees the raw bytes, ClientHello first):
//             what the TLS port does now while no hello on it needs its bytes untouched (src/listeners/tls.ts)
// `socket.upgradeTLS` after the peek is not a way: the ClientHello was consumed and the handshake
// fails (docs/benchmarks.md), so it is not measured.
//
// Usage: bun bench/tls-termination.ts                  ROUNDS=3 DURATION=4s CONNS=50 PORT=29443
// Prints one line per round and way (req/s, and the server process's CPU time per request, the
// steadier figure on a shared machine), then the medians per way. Needs wrk and openssl.
// WAYS="listen unix direct" picks ways; the server runs on CPU 1 and wrk on CPU 0 (taskset).
import { Duplex } from 'node:stream'
import * as tls from 'node:tls'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const ALL_WAYS = ['serve', 'listen', 'unix', 'nodetls', 'direct', 'sni', 'upgrade'] as const
type Way = (typeof ALL_WAYS)[number]
const WAYS = (process.env.WAYS?.split(/\s+/).filter(Boolean) as Way[] | undefined) ?? ALL_WAYS
const PORT = Number(process.env.PORT ?? 29443)
const ANSWER = Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')

/** One answer per request head that ends in `chunk` (wrk writes whole heads). */
function answers(chunk: Uint8Array): Buffer {
  let n = 0
  for (let i = 3; i < chunk.length; i++) if (chunk[i] === 10 && chunk[i - 1] === 13 && chunk[i - 2] === 10 && chunk[i - 3] === 13) n++
  return n === 1 ? ANSWER : Buffer.concat(Array<Buffer>(n).fill(ANSWER))
}

function serveWay(way: Way, cert: string, key: string): void {
  const tlsOptions = { cert, key, ALPNProtocols: Buffer.from('\x08http/1.1') }
  if (way === 'direct') return void Bun.listen({ hostname: '127.0.0.1', port: PORT, tls: tlsOptions, socket: { data: (s, d) => void s.write(answers(d)) } })
  if (way === 'sni') {
    // A second certificate object for the name wrk sends: the handler's pick, not the default, is served.
    const picked = (tls.createSecureContext({ cert, key }) as unknown as { context: unknown }).context
    const handlers = { data: (s: { write(b: Uint8Array): number }, d: Uint8Array) => void s.write(answers(d)), serverName: (_l: unknown, name: string) => (name === 'localhost' ? picked : undefined) }
    return void Bun.listen({ hostname: '127.0.0.1', port: PORT, tls: tlsOptions, socket: handlers as Parameters<typeof Bun.listen>[0]['socket'] })
  }
  if (way === 'upgrade') {
    const handlers = { data: (s: { write(b: Uint8Array): number }, d: Uint8Array) => void s.write(answers(d)) }
    return void Bun.listen({ hostname: '127.0.0.1', port: PORT, socket: { open: (s) => void (s as unknown as { upgradeTLS(o: unknown): unknown }).upgradeTLS({ tls: tlsOptions, socket: handlers }), data() {} } })
  }
  let target = 0
  const unix = join(mkdtempSync(join(tmpdir(), 'tls-termination-')), 'internal.sock')
  if (way === 'unix') Bun.listen({ unix, tls: tlsOptions, socket: { data: (s, d) => void s.write(answers(d)) } })
  if (way === 'serve') target = Bun.serve({ hostname: '127.0.0.1', port: 0, tls: [{ cert, key }], http2: true, fetch: () => new Response('ok') }).port!
  if (way === 'listen')
    target = Bun.listen({ hostname: '127.0.0.1', port: 0, tls: tlsOptions, socket: { data: (s, d) => void s.write(answers(d)) } }).port
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
        const handlers = { data: (_u: unknown, c: Buffer) => void s.write(c), close: () => void s.end() }
        s.data.peer = await (way === 'unix' ? Bun.connect({ unix, socket: handlers }) : Bun.connect({ hostname: '127.0.0.1', port: target, socket: handlers }))
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

/** utime + stime of a process, in clock ticks (1/100 s). */
function ticks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.split(' ')
  return Number(fields[11]) + Number(fields[12])
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
  const cpu = new Map<Way, number[]>(WAYS.map((w) => [w, []]))
  for (let round = 1; round <= rounds; round++)
    for (const w of WAYS) {
      const server = Bun.spawn(['taskset', '-c', '1', process.execPath, import.meta.path, w, certPath, keyPath], { stdout: 'pipe' })
      const reader = server.stdout.getReader()
      await reader.read()
      const wrk = (duration: string) =>
        Bun.spawn(['taskset', '-c', '0', 'wrk', '-t1', `-c${process.env.CONNS ?? 50}`, `-d${duration}`, `https://localhost:${PORT}/`], { stdout: 'pipe' })
      await wrk('1s').exited
      const before = ticks(server.pid)
      const run = wrk(process.env.DURATION ?? '4s')
      const out = await new Response(run.stdout).text()
      const spent = ticks(server.pid) - before
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0)
      const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0)
      const us = requests ? (spent / 100 / requests) * 1e6 : 0
      results.get(w)!.push(rps)
      cpu.get(w)!.push(us)
      console.log(`round ${round} ${w.padEnd(8)} ${Math.round(rps)} req/s  ${us.toFixed(1)} µs CPU/request`)
      server.kill()
      await server.exited
    }
  const median = (all: number[]) => [...all].sort((a, b) => a - b)[Math.floor(all.length / 2)]!
  for (const w of WAYS) {
    const all = results.get(w)!
    const us = cpu.get(w)!
    console.log(`median ${w.padEnd(8)} ${Math.round(median(all))} req/s (${all.map(Math.round).join(' / ')})  ${median(us).toFixed(1)} µs CPU/request (${us.map((u) => u.toFixed(1)).join(' / ')})`)
  }
}

await main()
