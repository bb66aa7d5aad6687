import { describe, expect, test } from 'bun:test'
import { connect as tlsConnect } from 'node:tls'
import { DEFAULT_MAX_HELLO_BYTES, peekClientHello, type PeekResult } from './sni.ts'

// ---------------------------------------------------------------------------------------------
// Test-side helpers. They trust their input (only ever fed well-formed hellos built or captured
// here), which keeps them short and independent of the parser under test.
// ---------------------------------------------------------------------------------------------

function u8(...parts: (number | number[] | Uint8Array | string)[]): Uint8Array {
  const out: number[] = []
  for (const p of parts) {
    if (typeof p === 'number') out.push(p)
    else if (typeof p === 'string') for (let i = 0; i < p.length; i++) out.push(p.charCodeAt(i))
    else out.push(...p)
  }
  return Uint8Array.from(out)
}

const be16 = (n: number) => [(n >> 8) & 0xff, n & 0xff]
const be24 = (n: number) => [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]

/** The handshake bytes carried by the leading handshake records of `bytes`, concatenated. */
function handshakeOf(bytes: Uint8Array): Uint8Array {
  const out: number[] = []
  let pos = 0
  while (pos + 5 <= bytes.length && bytes[pos] === 0x16) {
    const len = (bytes[pos + 3]! << 8) | bytes[pos + 4]!
    out.push(...bytes.subarray(pos + 5, Math.min(pos + 5 + len, bytes.length)))
    pos += 5 + len
  }
  return Uint8Array.from(out)
}

/** True once `bytes` hold a whole handshake message (what the capture server waits for). */
function helloComplete(bytes: Uint8Array): boolean {
  const hs = handshakeOf(bytes)
  return hs.length >= 4 && hs.length >= 4 + ((hs[1]! << 16) | (hs[2]! << 8) | hs[3]!)
}

/** Re-frames a handshake message into records of at most `size` bytes each. */
function toRecords(msg: Uint8Array, size: number, version = [0x03, 0x01]): Uint8Array {
  const parts: (number | number[] | Uint8Array)[] = []
  for (let off = 0; off < msg.length; off += size) {
    const frag = msg.subarray(off, Math.min(off + size, msg.length))
    parts.push(0x16, version, be16(frag.length), frag)
  }
  return u8(...parts)
}

/** Extension (type, body offsets) list of a ClientHello handshake message. */
function extensionsOf(msg: Uint8Array): { type: number; start: number; end: number }[] {
  let p = 4 + 34
  p += 1 + msg[p]!
  p += 2 + ((msg[p]! << 8) | msg[p + 1]!)
  p += 1 + msg[p]!
  const out: { type: number; start: number; end: number }[] = []
  if (p >= msg.length) return out
  p += 2
  while (p < msg.length) {
    const type = (msg[p]! << 8) | msg[p + 1]!
    const len = (msg[p + 2]! << 8) | msg[p + 3]!
    out.push({ type, start: p + 4, end: p + 4 + len })
    p += 4 + len
  }
  return out
}

/** The versions in the supported_versions extension (43), or [] when it is absent. */
function supportedVersions(hello: Uint8Array): number[] {
  const msg = handshakeOf(hello)
  const ext = extensionsOf(msg).find((e) => e.type === 43)
  if (!ext) return []
  const out: number[] = []
  for (let p = ext.start + 1; p < ext.end; p += 2) out.push((msg[p]! << 8) | msg[p + 1]!)
  return out.filter((v) => (v & 0x0f0f) !== 0x0a0a) // drop GREASE
}

type Ext = [type: number, body: Uint8Array]

function sniExt(...names: (string | [nameType: number, name: string])[]): Ext {
  const entries = names.map((n) => {
    const [t, s] = typeof n === 'string' ? [0, n] : n
    return u8(t, be16(s.length), s)
  })
  const list = u8(...entries)
  return [0x0000, u8(be16(list.length), list)]
}

function alpnExt(...protocols: string[]): Ext {
  const list = u8(...protocols.map((p) => u8(p.length, p)))
  return [0x0010, u8(be16(list.length), list)]
}

interface HelloParts {
  exts?: Ext[] | undefined // undefined: no extensions block at all
  sessionId?: number
  ciphers?: Uint8Array
  compression?: Uint8Array
  clientVersion?: number[]
}

/** The ClientHello handshake message (header included) for the given parts. */
function helloMessage(parts: HelloParts = {}): Uint8Array {
  const sid = new Uint8Array(parts.sessionId ?? 32).fill(0xab)
  const ciphers = parts.ciphers ?? u8(be16(4), 0x13, 0x01, 0xc0, 0x2f)
  const comp = parts.compression ?? u8(1, 0)
  const exts = parts.exts === undefined
    ? u8()
    : (() => {
        const body = u8(...parts.exts!.map(([t, b]) => u8(be16(t), be16(b.length), b)))
        return u8(be16(body.length), body)
      })()
  const body = u8(parts.clientVersion ?? [0x03, 0x03], new Uint8Array(32).fill(7), sid.length, sid, ciphers, comp, exts)
  return u8(0x01, be24(body.length), body)
}

/** A single-record ClientHello. */
function hello(parts: HelloParts = {}): Uint8Array {
  const msg = helloMessage(parts)
  return u8(0x16, 0x03, 0x01, be16(msg.length), msg)
}

/** Overwrites bytes of a copy of `bytes` at `offset`. */
function patch(bytes: Uint8Array, offset: number, values: number[]): Uint8Array {
  const out = bytes.slice()
  out.set(values, offset)
  return out
}

// ---------------------------------------------------------------------------------------------
// Real ClientHellos, captured at load time from real clients through a raw Bun.listen socket.
// ---------------------------------------------------------------------------------------------

interface Capture {
  bytes?: Uint8Array
  error?: string
}

/** Starts a raw TCP listener, runs `client(port)`, and records the first bytes until a whole hello is in. */
async function capture(client: (port: number) => { stop(): void } | Promise<{ stop(): void }>): Promise<Capture> {
  const chunks: Uint8Array[] = []
  const { promise, resolve } = Promise.withResolvers<void>()
  const server = Bun.listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      data(socket, data) {
        chunks.push(data.slice())
        if (helloComplete(Buffer.concat(chunks))) {
          resolve()
          socket.end()
        }
      },
      error() {},
    },
  })
  let handle: { stop(): void } | undefined
  try {
    handle = await client(server.port)
    const timedOut = await Promise.race([promise.then(() => false), Bun.sleep(8000).then(() => true)])
    const bytes = new Uint8Array(Buffer.concat(chunks))
    if (timedOut) return { error: `no complete ClientHello within 8 s (got ${bytes.length} bytes)` }
    return { bytes }
  } catch (err) {
    return { error: String(err) }
  } finally {
    handle?.stop()
    server.stop(true)
  }
}

function spawnClient(cmd: string[]): { stop(): void } {
  const proc = Bun.spawn(cmd, { stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' })
  return { stop: () => proc.kill() }
}

const OPENSSL = Bun.which('openssl')
const CURL = Bun.which('curl')
const NODE = Bun.which('node')
for (const [tool, path] of [['openssl', OPENSSL], ['curl', CURL], ['node', NODE]] as const) {
  if (!path) {
    console.warn(`sni.test.ts: "${tool}" not found; its ClientHello cases are skipped (apt-get install ${tool === 'node' ? 'nodejs' : tool}; scripts/test installs openssl and curl)`)
  }
}

interface ClientCase {
  desc: string
  available: boolean
  run: (port: number) => { stop(): void } | Promise<{ stop(): void }>
  serverName: string | undefined
  /** Exact ALPN list, or a protocol that must be in it when the client build decides the rest. */
  alpn: string[] | { includes: string }
  versions?: (versions: number[]) => boolean
}

function openssl(...args: string[]): ClientCase['run'] {
  return (port) => spawnClient([OPENSSL ?? 'openssl', 's_client', '-connect', `127.0.0.1:${port}`, ...args])
}

const TLS13 = 0x0304
const TLS12 = 0x0303

const CLIENTS: ClientCase[] = [
  {
    desc: 'openssl s_client -servername -alpn h2,http/1.1',
    available: !!OPENSSL,
    run: openssl('-servername', 'openssl.example.test', '-alpn', 'h2,http/1.1'),
    serverName: 'openssl.example.test',
    alpn: ['h2', 'http/1.1'],
  },
  {
    desc: 'openssl s_client with a mixed-case name (lower-cased)',
    available: !!OPENSSL,
    run: openssl('-servername', 'MiXeD.Example.TEST', '-alpn', 'h2,http/1.1'),
    serverName: 'mixed.example.test',
    alpn: ['h2', 'http/1.1'],
  },
  {
    desc: 'openssl s_client -tls1_2 (TLS 1.2 only)',
    available: !!OPENSSL,
    run: openssl('-servername', 'tls12.example.test', '-tls1_2', '-alpn', 'http/1.1'),
    serverName: 'tls12.example.test',
    alpn: ['http/1.1'],
    versions: (v) => !v.includes(TLS13),
  },
  {
    desc: 'openssl s_client -tls1_3 (TLS 1.3 only)',
    available: !!OPENSSL,
    run: openssl('-servername', 'tls13.example.test', '-tls1_3'),
    serverName: 'tls13.example.test',
    alpn: [],
    versions: (v) => v.length === 1 && v[0] === TLS13,
  },
  {
    desc: 'openssl s_client -noservername (no SNI)',
    available: !!OPENSSL,
    run: openssl('-noservername', '-alpn', 'h2'),
    serverName: undefined,
    alpn: ['h2'],
  },
  {
    desc: 'curl https://NAME:PORT --resolve',
    available: !!CURL,
    run: (port) =>
      spawnClient([CURL ?? 'curl', '-sk', '--max-time', '10', `https://curl.example.test:${port}/`, '--resolve', `curl.example.test:${port}:127.0.0.1`]),
    serverName: 'curl.example.test',
    alpn: { includes: 'http/1.1' }, // h2 too when curl is built with nghttp2
  },
  {
    desc: 'curl --tlsv1.2 --tls-max 1.2',
    available: !!CURL,
    run: (port) =>
      spawnClient([CURL ?? 'curl', '-sk', '--http1.1', '--tlsv1.2', '--tls-max', '1.2', '--max-time', '10', `https://curl12.example.test:${port}/`, '--resolve', `curl12.example.test:${port}:127.0.0.1`]),
    serverName: 'curl12.example.test',
    alpn: ['http/1.1'],
    versions: (v) => !v.includes(TLS13),
  },
  {
    desc: 'Bun.connect({ tls: { serverName } })',
    available: true,
    run: async (port) => {
      const socket = await Bun.connect({
        hostname: '127.0.0.1',
        port,
        // Bun takes ALPN in wire format: length-prefixed names.
        tls: { serverName: 'bun.example.test', rejectUnauthorized: false, ALPNProtocols: Buffer.from('\x02h2\x08http/1.1', 'latin1') },
        socket: { data() {}, error() {}, connectError() {}, handshake() {} },
      })
      return { stop: () => socket.terminate() }
    },
    serverName: 'bun.example.test',
    alpn: ['h2', 'http/1.1'],
  },
  {
    desc: "node:tls connect() inside Bun, with ALPNProtocols",
    available: true,
    run: (port) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'nodetls.example.test', ALPNProtocols: ['h2', 'http/1.1'], rejectUnauthorized: false })
      socket.on('error', () => {})
      return { stop: () => socket.destroy() }
    },
    serverName: 'nodetls.example.test',
    alpn: ['h2', 'http/1.1'],
  },
  {
    desc: 'Node.js (real node binary) tls.connect',
    available: !!NODE,
    run: (port) =>
      spawnClient([
        NODE ?? 'node',
        '-e',
        `require('tls').connect({host:'127.0.0.1',port:${port},servername:'node.example.test',ALPNProtocols:['http/1.1'],rejectUnauthorized:false}).on('error',()=>{})`,
      ]),
    serverName: 'node.example.test',
    alpn: ['http/1.1'],
  },
]

const captured = new Map<string, Capture>()
for (const c of CLIENTS) {
  if (c.available) captured.set(c.desc, await capture(c.run))
}
/** Captured hellos that made it, for the table-driven tests below. */
const REAL: { desc: string; bytes: Uint8Array }[] = CLIENTS.flatMap((c) => {
  const bytes = captured.get(c.desc)?.bytes
  return bytes ? [{ desc: c.desc, bytes }] : []
})

function expectHello(r: PeekResult): Extract<PeekResult, { kind: 'hello' }> {
  if (r.kind !== 'hello') throw new Error(`expected a hello, got ${JSON.stringify(r)}`)
  return r
}

describe('peekClientHello() on real ClientHellos', () => {
  // One case per client; a client that is not installed shows as skipped (see the warning above).
  for (const c of CLIENTS) {
    test.skipIf(!c.available)(c.desc, () => {
      const cap = captured.get(c.desc)
      // Setup failure (client did not send a hello) aborts this case with the reason.
      expect(cap?.error).toBeUndefined()
      const bytes = cap!.bytes!
      const r = expectHello(peekClientHello(bytes))
      expect(r.serverName).toBe(c.serverName)
      if (Array.isArray(c.alpn)) expect(r.alpn).toEqual(c.alpn)
      else expect(r.alpn).toContain(c.alpn.includes)
      expect(r.length).toBe(bytes.length)
      if (c.versions) expect(c.versions(supportedVersions(bytes))).toBe(true)
    })
  }

  test('at least the in-process clients produced a hello', () => {
    expect(REAL.length).toBeGreaterThanOrEqual(2)
  })

  test.each(REAL)('every strict prefix is need-more: $desc', ({ bytes }) => {
    for (let i = 0; i < bytes.length; i++) {
      const r = peekClientHello(bytes.subarray(0, i))
      if (r.kind !== 'need-more') throw new Error(`prefix ${i}/${bytes.length}: ${JSON.stringify(r)}`)
    }
  })

  test.each(REAL)('bytes after the hello (early data) are not part of it: $desc', ({ bytes }) => {
    const more = u8(bytes, 0x14, 0x03, 0x03, 0x00, 0x01, 0x01, 0x17, 0x03, 0x03, 0x00, 0x02, 0xaa, 0xbb)
    expect(peekClientHello(more)).toEqual(peekClientHello(bytes))
  })

  test.each(REAL)('maxBytes is inclusive of the hello length: $desc', ({ bytes }) => {
    expect(peekClientHello(bytes, { maxBytes: bytes.length }).kind).toBe('hello')
    expect(peekClientHello(bytes, { maxBytes: bytes.length - 1 })).toEqual({ kind: 'invalid', reason: `ClientHello exceeds ${bytes.length - 1} bytes` })
    // The cap is known as soon as the record header is: no waiting for the rest.
    expect(peekClientHello(bytes.subarray(0, 5), { maxBytes: bytes.length - 1 }).kind).toBe('invalid')
  })
})

describe('peekClientHello() on a hello split across records', () => {
  const cases = REAL.flatMap(({ desc, bytes }) =>
    [1, 3, 4, 5, 100, 1000].map((size) => ({ desc: `${desc} in ${size}-byte records`, bytes, size })),
  )

  test.each(cases)('$desc', ({ bytes, size }) => {
    const split = toRecords(handshakeOf(bytes), size)
    const want = expectHello(peekClientHello(bytes))
    const got = expectHello(peekClientHello(split))
    expect({ ...got, length: 0 }).toEqual({ ...want, length: 0 })
    expect(got.length).toBe(split.length)
  })

  const first = REAL[0]
  test.skipIf(!first)('every strict prefix of a 100-byte-record hello is need-more', () => {
    const split = toRecords(handshakeOf(first!.bytes), 100)
    expect(split.length).toBeGreaterThan(first!.bytes.length) // really several records
    for (let i = 0; i < split.length; i++) {
      const r = peekClientHello(split.subarray(0, i))
      if (r.kind !== 'need-more') throw new Error(`prefix ${i}/${split.length}: ${JSON.stringify(r)}`)
    }
    expect(peekClientHello(split).kind).toBe('hello')
  })

  test.skipIf(!first)('a multi-record hello over maxBytes is invalid before it is complete', () => {
    const split = toRecords(handshakeOf(first!.bytes), 100)
    expect(peekClientHello(split, { maxBytes: split.length - 1 }).kind).toBe('invalid')
    expect(peekClientHello(split, { maxBytes: split.length }).kind).toBe('hello')
    // The handshake header announces the size, and a message longer than its first record needs
    // at least two record headers: 9 bytes are enough to see that it cannot fit.
    const msgLen = handshakeOf(first!.bytes).length
    expect(peekClientHello(split.subarray(0, 9), { maxBytes: msgLen + 9 }).kind).toBe('invalid')
    expect(peekClientHello(split.subarray(0, 9), { maxBytes: msgLen + 10 }).kind).toBe('need-more')
  })
})

describe('peekClientHello() on synthetic hellos', () => {
  test.each([
    { desc: 'SNI and ALPN', bytes: hello({ exts: [sniExt('a.example'), alpnExt('h2', 'http/1.1')] }), serverName: 'a.example', alpn: ['h2', 'http/1.1'] },
    { desc: 'no extensions block at all (pre-TLS-1.2 client)', bytes: hello(), serverName: undefined, alpn: [] },
    { desc: 'empty extensions block', bytes: hello({ exts: [] }), serverName: undefined, alpn: [] },
    { desc: 'wildcard, underscore, digits and dashes are allowed', bytes: hello({ exts: [sniExt('*.x_y-1.example')] }), serverName: '*.x_y-1.example', alpn: [] },
    { desc: 'a host:port name (some clients send the Host header) routes on the host', bytes: hello({ exts: [sniExt('A.Example:8443')] }), serverName: 'a.example', alpn: [], portInServerName: true },
    { desc: 'a 255-byte name is allowed', bytes: hello({ exts: [sniExt('a'.repeat(255))] }), serverName: 'a'.repeat(255), alpn: [] },
    { desc: 'unknown name types are skipped', bytes: hello({ exts: [sniExt([7, '\u00ff\u0000'], 'b.example')] }), serverName: 'b.example', alpn: [] },
    { desc: 'a list with only unknown name types means no SNI', bytes: hello({ exts: [sniExt([1, 'zz'])] }), serverName: undefined, alpn: [] },
    { desc: 'ALPN names are opaque bytes, decoded 1:1', bytes: hello({ exts: [alpnExt('\u00ff\u0001x')] }), serverName: undefined, alpn: ['\u00ff\u0001x'] },
    { desc: 'other extensions are skipped', bytes: hello({ exts: [[0x0a0a, u8()], [43, u8(2, 3, 4)], sniExt('c.example'), [0xffff, u8(1, 2, 3)]] }), serverName: 'c.example', alpn: [] },
    { desc: 'SSL 3.0 record version', bytes: patch(hello({ exts: [sniExt('d.example')] }), 2, [0x00]), serverName: 'd.example', alpn: [] },
    { desc: 'handshake header split over 1-byte records', bytes: toRecords(helloMessage({ exts: [sniExt('e.example')] }), 1), serverName: 'e.example', alpn: [] },
    { desc: 'empty session id', bytes: hello({ sessionId: 0, exts: [sniExt('f.example')] }), serverName: 'f.example', alpn: [] },
  ])('$desc', ({ bytes, serverName, alpn, portInServerName }) => {
    const port = portInServerName ? { portInServerName } : {}
    expect(peekClientHello(bytes)).toEqual({ kind: 'hello', serverName, alpn: [...alpn], length: bytes.length, ...port })
  })
})

describe('peekClientHello() need-more', () => {
  const full = hello({ exts: [sniExt('a.example')] })
  test.each([
    { desc: 'empty buffer', bytes: u8() },
    { desc: 'just the content type', bytes: u8(0x16) },
    { desc: 'content type and major version', bytes: u8(0x16, 0x03) },
    { desc: 'record header without length', bytes: u8(0x16, 0x03, 0x01, 0x00) },
    { desc: 'record header only', bytes: full.subarray(0, 5) },
    { desc: 'record header and handshake type', bytes: full.subarray(0, 6) },
    { desc: 'all but the last byte', bytes: full.subarray(0, full.length - 1) },
    { desc: 'first of two records', bytes: toRecords(helloMessage({ exts: [sniExt('a.example')] }), 40).subarray(0, 45) },
    { desc: 'first record and part of the second header', bytes: toRecords(helloMessage({ exts: [sniExt('a.example')] }), 40).subarray(0, 47) },
  ])('$desc', ({ bytes }) => {
    expect(peekClientHello(bytes)).toEqual({ kind: 'need-more' })
  })
})

describe('peekClientHello() not-tls', () => {
  test.each([
    { desc: 'HTTP/1.1 request', bytes: u8('GET / HTTP/1.1\r\nHost: a.example\r\n\r\n') },
    { desc: 'one byte of HTTP', bytes: u8('G') },
    { desc: 'HTTP/2 preface', bytes: u8('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n') },
    { desc: 'SSH banner', bytes: u8('SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n') },
    { desc: 'PROXY protocol v1 header', bytes: u8('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n') },
    { desc: 'SSLv2-style ClientHello', bytes: u8(0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10) },
    { desc: 'TLS alert record', bytes: u8(0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28) },
    { desc: 'TLS application data record', bytes: u8(0x17, 0x03, 0x03, 0x00, 0x01, 0x00) },
    { desc: 'handshake type byte with major version 2', bytes: u8(0x16, 0x02) },
    { desc: 'handshake type byte with minor version 5', bytes: u8(0x16, 0x03, 0x05, 0x00, 0x10) },
  ])('$desc', ({ bytes }) => {
    expect(peekClientHello(bytes)).toEqual({ kind: 'not-tls' })
    // A decision never changes when more bytes arrive.
    expect(peekClientHello(u8(bytes, new Uint8Array(64).fill(0x16)))).toEqual({ kind: 'not-tls' })
  })
})

describe('peekClientHello() invalid', () => {
  const sni = sniExt('a.example')
  const ok = hello({ exts: [sni] })
  const msg = helloMessage({ exts: [sni] })
  // Offsets inside `ok` (single record): body at 9, session id length at 43, ciphers at 44+32.
  const SID = 9 + 34
  const CS = SID + 1 + 32
  const EXTLEN = CS + 2 + 4 + 2
  // Where the last 50-byte record starts when `msg` is split into 50-byte records.
  const CUT = msg.length - (msg.length % 50 || 50)

  test.each([
    { desc: 'zero-length record', bytes: u8(0x16, 0x03, 0x01, 0x00, 0x00), reason: 'empty handshake record' },
    { desc: 'record longer than 2^14', bytes: u8(0x16, 0x03, 0x01, be16(16385)), reason: 'record length 16385 exceeds 16384' },
    { desc: 'ServerHello instead of ClientHello', bytes: patch(ok, 5, [0x02]), reason: 'first handshake message is not a ClientHello' },
    { desc: 'handshake length longer than the cap', bytes: u8(0x16, 0x03, 0x01, be16(100), 0x01, be24(0xffffff)), reason: `ClientHello exceeds ${DEFAULT_MAX_HELLO_BYTES} bytes` },
    { desc: 'record bigger than the cap', bytes: u8(0x16, 0x03, 0x01, be16(16384)), reason: 'ClientHello exceeds 16000 bytes', maxBytes: 16000 },
    { desc: 'record holds data after the hello', bytes: u8(0x16, 0x03, 0x01, be16(msg.length + 1), msg, 0x00), reason: 'record holds data after the ClientHello' },
    { desc: 'last of several records holds data after the hello', bytes: u8(toRecords(msg.subarray(0, CUT), 50), toRecords(u8(msg.subarray(CUT), 0x00), 1000)), reason: 'record holds data after the ClientHello' },
    { desc: 'alert record in the middle of the hello', bytes: u8(toRecords(msg, 50).subarray(0, 55), 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28), reason: 'ClientHello interrupted by a non-handshake record' },
    { desc: 'partial non-handshake header after the first record', bytes: u8(toRecords(msg, 50).subarray(0, 55), 0x17), reason: 'ClientHello interrupted by a non-handshake record' },
    { desc: 'second record with a bad version', bytes: u8(toRecords(msg, 50).subarray(0, 55), 0x16, 0x04, 0x01, 0x00, 0x10), reason: 'bad record version' },
    { desc: 'ClientHello major version not 3', bytes: patch(ok, 9, [0x02]), reason: 'bad ClientHello version' },
    { desc: 'body too short for version and random', bytes: u8(0x16, 0x03, 0x01, 0x00, 0x08, 0x01, be24(4), 0x03, 0x03, 0x00, 0x00), reason: 'ClientHello too short' },
    { desc: 'session id longer than 32', bytes: patch(ok, SID, [33]), reason: 'session id longer than 32 bytes' },
    { desc: 'odd cipher suites length', bytes: hello({ ciphers: u8(be16(3), 1, 2, 3), exts: [sni] }), reason: 'bad cipher suites length' },
    { desc: 'empty cipher suites', bytes: hello({ ciphers: u8(be16(0)), exts: [sni] }), reason: 'bad cipher suites length' },
    { desc: 'cipher suites overrun the hello', bytes: patch(ok, CS, be16(0xfffe)), reason: 'ClientHello too short' },
    { desc: 'no compression methods', bytes: hello({ compression: u8(0), exts: [sni] }), reason: 'no compression methods' },
    { desc: 'extensions length one too long', bytes: patch(ok, EXTLEN, be16(sni[1].length + 5)), reason: 'extensions length does not match the ClientHello' },
    { desc: 'extensions length one too short', bytes: patch(ok, EXTLEN, be16(sni[1].length + 3)), reason: 'extensions length does not match the ClientHello' },
    { desc: 'one stray byte instead of an extensions length', bytes: helloWithTail(u8(0x00)), reason: 'ClientHello too short' },
    { desc: 'truncated extension header', bytes: helloWithTail(u8(be16(3), 0x00, 0x00, 0x00)), reason: 'truncated extension header' },
    { desc: 'extension overruns the hello', bytes: helloWithTail(u8(be16(5), 0x00, 0x0f, 0x00, 0x05, 0x01)), reason: 'extension overruns the ClientHello' },
    { desc: 'server_name list length mismatch', bytes: hello({ exts: [[0, u8(be16(20), 0, be16(3), 'a.b')]] }), reason: 'server_name list length does not match the extension' },
    { desc: 'empty server_name extension', bytes: hello({ exts: [[0, u8()]] }), reason: 'truncated server_name extension' },
    { desc: 'empty server_name list', bytes: hello({ exts: [[0, u8(be16(0))]] }), reason: 'empty server_name list' },
    { desc: 'truncated server_name entry', bytes: hello({ exts: [[0, u8(be16(2), 0, 0)]] }), reason: 'truncated server_name entry' },
    { desc: 'server name overruns its list', bytes: hello({ exts: [[0, u8(be16(6), 0, be16(9), 'a.b')]] }), reason: 'server name overruns the extension' },
    { desc: 'empty server name', bytes: hello({ exts: [sniExt('')] }), reason: 'empty server name' },
    { desc: 'server name of 256 bytes', bytes: hello({ exts: [sniExt('a'.repeat(256))] }), reason: 'server name longer than 255 bytes' },
    { desc: 'server name with a space', bytes: hello({ exts: [sniExt('a b.example')] }), reason: 'server name has a byte outside [a-z0-9.-_*]' },
    { desc: 'server name with a NUL', bytes: hello({ exts: [sniExt('good.example\u0000.evil')] }), reason: 'server name has a byte outside [a-z0-9.-_*]' },
    { desc: 'server name with a slash', bytes: hello({ exts: [sniExt('a/b')] }), reason: 'server name has a byte outside [a-z0-9.-_*]' },
    { desc: 'server name with a colon and no port', bytes: hello({ exts: [sniExt('a.example:')] }), reason: 'server name has a byte outside [a-z0-9.-_*]' },
    { desc: 'server name with a non-numeric port', bytes: hello({ exts: [sniExt('a.example:https')] }), reason: 'server name has a byte outside [a-z0-9.-_*]' },
    { desc: 'server name with a 6-digit port', bytes: hello({ exts: [sniExt('a.example:123456')] }), reason: 'server name has a byte outside [a-z0-9.-_*]' },
    { desc: 'server name that is only a port', bytes: hello({ exts: [sniExt(':443')] }), reason: 'server name has a byte outside [a-z0-9.-_*]' },
    { desc: 'server name with raw UTF-8', bytes: hello({ exts: [sniExt('b\u00c3\u00bcch.example')] }), reason: 'server name has a byte outside [a-z0-9.-_*]' },
    { desc: 'two host_name entries', bytes: hello({ exts: [sniExt('a.example', 'b.example')] }), reason: 'more than one host_name in server_name' },
    { desc: 'two server_name extensions', bytes: hello({ exts: [sniExt('a.example'), sniExt('b.example')] }), reason: 'duplicate server_name extension' },
    { desc: 'empty ALPN extension', bytes: hello({ exts: [[16, u8()]] }), reason: 'truncated ALPN extension' },
    { desc: 'empty ALPN list', bytes: hello({ exts: [[16, u8(be16(0))]] }), reason: 'empty ALPN list' },
    { desc: 'ALPN list length mismatch', bytes: hello({ exts: [[16, u8(be16(9), 2, 'h2')]] }), reason: 'ALPN list length does not match the extension' },
    { desc: 'empty ALPN protocol', bytes: hello({ exts: [alpnExt('h2', '')] }), reason: 'empty ALPN protocol name' },
    { desc: 'ALPN protocol overruns the list', bytes: hello({ exts: [[16, u8(be16(3), 5, 'h2')]] }), reason: 'ALPN protocol name overruns the extension' },
    { desc: 'two ALPN extensions', bytes: hello({ exts: [alpnExt('h2'), alpnExt('http/1.1')] }), reason: 'duplicate ALPN extension' },
  ])('$desc', ({ bytes, reason, ...rest }) => {
    const options = 'maxBytes' in rest ? { maxBytes: rest.maxBytes } : undefined
    expect(peekClientHello(bytes, options)).toEqual({ kind: 'invalid', reason })
    // A decision never changes when more bytes arrive.
    expect(peekClientHello(u8(bytes, new Uint8Array(40).fill(0x16)), options)).toEqual({ kind: 'invalid', reason })
  })

  /** A single-record hello with `tail` as the raw bytes after the compression methods. */
  function helloWithTail(tail: Uint8Array): Uint8Array {
    const body = u8(helloMessage().subarray(4), tail)
    const m = u8(0x01, be24(body.length), body)
    return u8(0x16, 0x03, 0x01, be16(m.length), m)
  }
})

describe('peekClientHello() options', () => {
  const big = hello({ exts: [sniExt('a.example'), [0x0015, new Uint8Array(17000 - 100)]] })
  test('the default cap is 16 KiB', () => {
    const msg = handshakeOf(big)
    const split = toRecords(msg, 16384)
    expect(split.length).toBeGreaterThan(DEFAULT_MAX_HELLO_BYTES)
    expect(peekClientHello(split)).toEqual({ kind: 'invalid', reason: 'ClientHello exceeds 16384 bytes' })
    expect(peekClientHello(split, { maxBytes: 20000 }).kind).toBe('hello')
  })

  test.each([
    { desc: 'NaN', maxBytes: Number.NaN },
    { desc: 'negative', maxBytes: -1 },
  ])('a $desc maxBytes falls back to the default', ({ maxBytes }) => {
    const small = hello({ exts: [sniExt('a.example')] })
    expect(peekClientHello(small, { maxBytes }).kind).toBe('hello')
  })

  test('a Buffer view with a byteOffset is read from its own start', () => {
    const inner = hello({ exts: [sniExt('view.example')] })
    const backing = Buffer.from(u8(new Uint8Array(7).fill(0x41), inner, 0x41))
    const view = backing.subarray(7, 7 + inner.length)
    expect(expectHello(peekClientHello(view)).serverName).toBe('view.example')
  })
})
