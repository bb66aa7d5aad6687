import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import * as tls from 'node:tls'
import { waitFor } from '../certs/testing.ts'
import { startFront } from './testing.ts'
import type { TlsFront } from './tls.ts'

// The TLS front's relay path in process with real sockets (a wildcard endpoint in dev mode gets a
// certificate per name, so its port is never terminated inline): which internal server a terminated
// connection reaches (the HTTP/1.1 engine unless the ClientHello offers h2), and the engine listeners' lifetime.

const IDLE_MS = 300
let front: TlsFront
let ca = ''
let stop = () => {}

beforeAll(async () => {
  ;({ front, ca, stop } = await startFront(
    { 'wild.yml': 'url: https://*.wild.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response, config: {body: "wild ${req.version}"}}]\n' },
    { listenerIdleMs: IDLE_MS },
  ))
})
afterAll(() => stop())

/** One request on a new connection; resolves with the answer's body and the protocol ALPN chose. */
function ask(name: string, alpn: string[]): Promise<{ body: string; alpn: string | false; sock: tls.TLSSocket }> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port: front.port, servername: name, ca, ALPNProtocols: alpn }, () =>
      sock.write(`GET / HTTP/1.1\r\nHost: ${name}:8443\r\n\r\n`),
    )
    let out = ''
    sock.on('data', (d: Buffer) => {
      out += d.toString()
      if (/\r\n\r\n[\s\S]*wild/.test(out)) resolve({ body: out.slice(out.indexOf('\r\n\r\n') + 4), alpn: sock.alpnProtocol ?? false, sock })
    })
    sock.on('error', reject)
  })
}

describe('TlsFront', () => {
  test('HTTP/1.1 goes to an engine listener per certificate, idle ones stop and start again on demand', async () => {
    const a = await ask('a.wild.warren.localhost', ['http/1.1'])
    expect([a.body, a.alpn]).toEqual(['wild HTTP/1.1', 'http/1.1'])
    const b = await ask('b.wild.warren.localhost', [])
    expect([b.body, b.alpn]).toEqual(['wild HTTP/1.1', false])
    // Dev mode issues a leaf per name under a wildcard endpoint: two certificates, two listeners.
    expect(front.engineListeners).toBe(2)
    a.sock.destroy()
    // a's listener stops once idle; b's, with a connection open, is kept past the idle time.
    await waitFor(() => front.engineListeners === 1, IDLE_MS * 10)
    await Bun.sleep(IDLE_MS * 2)
    expect(front.engineListeners).toBe(1)
    // …and still answers on that connection.
    let more = ''
    b.sock.on('data', (d: Buffer) => (more += d.toString()))
    b.sock.write('GET / HTTP/1.1\r\nHost: b.wild.warren.localhost:8443\r\n\r\n')
    await waitFor(() => more.endsWith('wild HTTP/1.1'), 3000)
    b.sock.destroy()
    await waitFor(() => front.engineListeners === 0, IDLE_MS * 10)
    const again = await ask('a.wild.warren.localhost', ['http/1.1'])
    expect(again.body).toBe('wild HTTP/1.1')
    expect(front.engineListeners).toBe(1)
    again.sock.destroy()
  })

  test('a ClientHello that offers h2 is served HTTP/2 by Bun.serve, not by the engine', async () => {
    const before = front.engineListeners
    const answer = await new Promise<string | false>((resolve, reject) => {
      const sock = tls.connect({ host: '127.0.0.1', port: front.port, servername: 'c.wild.warren.localhost', ca, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
        resolve(sock.alpnProtocol ?? false)
        sock.destroy()
      })
      sock.on('error', reject)
    })
    expect(answer).toBe('h2')
    expect(front.engineListeners).toBe(before)
  })
})
