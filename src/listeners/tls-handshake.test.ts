import { describe, expect, test } from 'bun:test'
import { connect as tlsConnect, createServer as tlsServer, type ConnectionOptions } from 'node:tls'
import { opensslCert } from '../certs/testing.ts'
import { firstHandshake, ja4Fingerprint, ja4OfClientHello, ServerHelloWatcher, type ServerHelloFacts } from './tls-handshake.ts'

const u16 = (v: number) => [v >> 8, v & 0xff]
const list16 = (items: number[]) => [...u16(items.length * 2), ...items.flatMap(u16)]
const ext = (type: number, data: number[]) => [...u16(type), ...u16(data.length), ...data]

/** A ClientHello record with these ciphers and extensions (in wire order), GREASE included. */
function clientHello(ciphers: number[], extensions: number[][]): Uint8Array {
  const body = [...u16(0x0303), ...new Array(32).fill(7), 0, ...list16(ciphers), 1, 0]
  const exts = extensions.flat()
  const msg = [...body, ...u16(exts.length), ...exts]
  const hs = [1, 0, ...u16(msg.length), ...msg]
  return Uint8Array.from([0x16, 0x03, 0x01, ...u16(hs.length), ...hs])
}

describe('JA4 of a ClientHello', () => {
  // A Chrome 143 hello as a public TLS fingerprinting service reported it (ja3_text for the wire
  // order, ja4_r for the sorted lists): t13d1516h2_8daaf6152771_d8a2da3f94cd.
  const ciphers = [0x2a2a, 4865, 4866, 4867, 49195, 49199, 49196, 49200, 52393, 52392, 49171, 49172, 156, 157, 47, 53]
  const sigalgs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
  const bodies: Record<number, number[]> = {
    0: [...u16(12), 0, ...u16(9), ...Buffer.from('localhost')],
    16: [...u16(12), 2, ...Buffer.from('h2'), 8, ...Buffer.from('http/1.1')],
    13: list16(sigalgs),
    43: [6, ...u16(0x3a3a), ...u16(0x0304), ...u16(0x0303)],
  }
  const order = [0x1a1a, 45, 51, 16, 65037, 23, 17613, 0, 11, 10, 43, 65281, 35, 18, 5, 13, 27, 0x4a4a]
  const hello = clientHello(ciphers, order.map((t) => ext(t, bodies[t] ?? [])))

  test('matches the published fingerprint', () => {
    expect(ja4Fingerprint(hello)).toBe('t13d1516h2_8daaf6152771_d8a2da3f94cd')
  })

  test('no SNI, no ALPN, TLS 1.2 only', () => {
    const plain = clientHello([0xc02f, 0x009c], [ext(13, list16([0x0401])), ext(10, [0, 2, 0, 23])])
    expect(ja4Fingerprint(plain)).toMatch(/^t12i020200_[0-9a-f]{12}_[0-9a-f]{12}$/)
  })

  test('a hello split over two records is reassembled; garbage gives nothing', () => {
    const one = ja4Fingerprint(hello)!
    const hs = hello.subarray(5)
    const split = Uint8Array.from([0x16, 3, 1, ...u16(10), ...hs.subarray(0, 10), 0x16, 3, 1, ...u16(hs.length - 10), ...hs.subarray(10)])
    expect(ja4Fingerprint(split)).toBe(one)
    expect(ja4Fingerprint(Uint8Array.from([0x16, 3, 1, 0, 4, 1, 0, 0, 9]))).toBeUndefined()
    expect(firstHandshake(hello.subarray(0, 20), 1)).toBe('need-more')
    expect(ja4OfClientHello(Uint8Array.from([1, 0, 0, 1, 3]))).toBeUndefined()
  })
})

/** Runs a real node:tls handshake through a tap and returns what the watcher saw in the server's bytes. */
async function handshake(options: ConnectionOptions): Promise<{ facts: ServerHelloFacts | undefined; ja4: string | undefined; protocol: string | null; cipher: string }> {
  const pair = opensslCert(['DNS:localhost'])
  const server = tlsServer({ cert: pair.cert, key: pair.key, ALPNProtocols: ['h2', 'http/1.1'] }, (s) => s.end('bye'))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  let facts: ServerHelloFacts | undefined
  let ja4: string | undefined
  let watcher: ServerHelloWatcher | undefined
  let tapPort = 0
  let tap: { port: number; stop(closeActive?: boolean): void } | undefined
  const watched = new Promise<void>((done) => {
    tap = Bun.listen<{ up?: Bun.Socket<undefined>; hello: Uint8Array[] }>({
      hostname: '127.0.0.1',
      port: 0,
      socket: {
        open(s) {
          s.data = { hello: [] }
          void Bun.connect({
            hostname: '127.0.0.1',
            port: (server.address() as { port: number }).port,
            socket: {
              open(up) {
                s.data.up = up
                for (const c of s.data.hello) up.write(c)
              },
              data(_u, chunk) {
                watcher ??= new ServerHelloWatcher((f) => ((facts = f), done()))
                watcher.feed(chunk)
                s.write(chunk)
              },
              close: () => void s.end(),
            },
          })
        },
        data(s, chunk) {
          if (!ja4) ja4 = ja4Fingerprint(chunk)
          s.data.hello.push(chunk.slice())
          s.data.up?.write(chunk)
        },
        close: (s) => void s.data.up?.end(),
      },
    })
    tapPort = tap!.port
  })
  const client = tlsConnect({ host: '127.0.0.1', port: tapPort, servername: 'localhost', rejectUnauthorized: false, ...options })
  await new Promise((r) => client.once('secureConnect', r))
  await watched
  const out = { facts, ja4, protocol: client.getProtocol(), cipher: client.getCipher().standardName }
  client.destroy()
  tap?.stop(true)
  server.close()
  return out
}

describe('ServerHelloWatcher on a real handshake', () => {
  test('TLS 1.3', async () => {
    const r = await handshake({ ALPNProtocols: ['h2'] })
    expect(r.protocol).toBe('TLSv1.3')
    expect(r.facts).toEqual({ version: '1.3', cipherSuite: r.cipher })
    expect(r.ja4).toMatch(/^t13d\d{4}h2_[0-9a-f]{12}_[0-9a-f]{12}$/)
  })

  test('TLS 1.2', async () => {
    const r = await handshake({ maxVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] })
    expect(r.protocol).toBe('TLSv1.2')
    expect(r.facts).toEqual({ version: '1.2', cipherSuite: r.cipher, alpn: 'http/1.1' })
  })
})
