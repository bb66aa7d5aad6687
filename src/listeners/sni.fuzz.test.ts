/**
 * Fuzz test for peekClientHello(): random bytes, mutated real ClientHellos and generated
 * well-framed hellos with hostile contents. Every input must give a well-formed result without
 * throwing, decisions must be stable as bytes are added, and generated hellos must match a model.
 *
 * Reproduce a failure with the seed it prints:  WARREN_FUZZ_SEED=1234 bun test src/listeners/sni.fuzz.test.ts
 * More inputs (bench/soak):                     WARREN_FUZZ_COUNT=1000000 bun test …
 */
import { expect, test } from 'bun:test'
import { connect as tlsConnect } from 'node:tls'
import { fuzzSettings, makeRng, type Rng } from '../../test/helpers/fuzz.ts'
import { DEFAULT_MAX_HELLO_BYTES, peekClientHello, type PeekResult } from './sni.ts'
import { ja4Fingerprint } from './tls-handshake.ts'

const { seed: SEED, count: ITERATIONS, explicitCount } = fuzzSettings()
/**
 * A default run stops early if a very slow machine would blow the test budget (it takes ~1–2 s
 * on a 2-core box); an explicit WARREN_FUZZ_COUNT always runs them all.
 */
const TIME_BUDGET_MS = explicitCount ? Infinity : 18_000

// ---------------------------------------------------------------------------------------------
// Byte helpers (trusting: only used on well-formed data built here or captured from clients).
// ---------------------------------------------------------------------------------------------

function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let off = 0
  for (const p of parts) {
    out.set(p, off)
    off += p.length
  }
  return out
}

function be16(n: number): Uint8Array {
  return Uint8Array.of((n >> 8) & 0xff, n & 0xff)
}

function latin1(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0))
}

function handshakeOf(bytes: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = []
  let pos = 0
  while (pos + 5 <= bytes.length && bytes[pos] === 0x16) {
    const len = (bytes[pos + 3]! << 8) | bytes[pos + 4]!
    parts.push(bytes.subarray(pos + 5, Math.min(pos + 5 + len, bytes.length)))
    pos += 5 + len
  }
  return concat(...parts)
}

function helloComplete(bytes: Uint8Array): boolean {
  const hs = handshakeOf(bytes)
  return hs.length >= 4 && hs.length >= 4 + ((hs[1]! << 16) | (hs[2]! << 8) | hs[3]!)
}

/** Re-frames a handshake message into records whose sizes `size()` picks. */
function toRecords(msg: Uint8Array, size: () => number): Uint8Array {
  const parts: Uint8Array[] = []
  for (let off = 0; off < msg.length; ) {
    const len = Math.min(Math.max(1, size()), msg.length - off, 16384)
    parts.push(Uint8Array.of(0x16, 0x03, 0x01, len >> 8, len & 0xff), msg.subarray(off, off + len))
    off += len
  }
  return concat(...parts)
}

/** Offsets and widths of every length field in a single-record ClientHello. */
function lengthFields(hello: Uint8Array): { at: number; width: 1 | 2 | 3 }[] {
  const out: { at: number; width: 1 | 2 | 3 }[] = [{ at: 3, width: 2 }, { at: 6, width: 3 }]
  const end = hello.length
  let p = 9 + 34
  out.push({ at: p, width: 1 })
  p += 1 + hello[p]!
  out.push({ at: p, width: 2 })
  p += 2 + ((hello[p]! << 8) | hello[p + 1]!)
  out.push({ at: p, width: 1 })
  p += 1 + hello[p]!
  if (p + 2 > end) return out
  out.push({ at: p, width: 2 })
  p += 2
  while (p + 4 <= end) {
    const type = (hello[p]! << 8) | hello[p + 1]!
    const len = (hello[p + 2]! << 8) | hello[p + 3]!
    out.push({ at: p + 2, width: 2 })
    const body = p + 4
    if (type === 0 || type === 16) {
      out.push({ at: body, width: 2 })
      for (let q = body + 2; q < body + len; ) {
        if (type === 0) {
          out.push({ at: q + 1, width: 2 })
          q += 3 + ((hello[q + 1]! << 8) | hello[q + 2]!)
        } else {
          out.push({ at: q, width: 1 })
          q += 1 + hello[q]!
        }
      }
    }
    p = body + len
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Corpus: real hellos from in-process clients (always there), plus openssl/curl when installed.
// ---------------------------------------------------------------------------------------------

async function capture(client: (port: number) => Promise<() => void> | (() => void)): Promise<Uint8Array | undefined> {
  const chunks: Uint8Array[] = []
  const { promise, resolve } = Promise.withResolvers<void>()
  const server = Bun.listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      data(socket, data) {
        chunks.push(data.slice())
        if (helloComplete(concat(...chunks))) {
          resolve()
          socket.end()
        }
      },
      error() {},
    },
  })
  let stop: (() => void) | undefined
  try {
    stop = await client(server.port)
    const ok = await Promise.race([promise.then(() => true), Bun.sleep(8000).then(() => false)])
    return ok ? concat(...chunks) : undefined
  } catch {
    return undefined
  } finally {
    stop?.()
    server.stop(true)
  }
}

function spawned(cmd: string[]): () => void {
  const proc = Bun.spawn(cmd, { stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' })
  return () => proc.kill()
}

async function realCorpus(): Promise<{ name: string; bytes: Uint8Array }[]> {
  const clients: [string, (port: number) => Promise<() => void> | (() => void)][] = [
    [
      'Bun.connect',
      async (port) => {
        const s = await Bun.connect({
          hostname: '127.0.0.1',
          port,
          tls: { serverName: 'fuzz.example.test', rejectUnauthorized: false, ALPNProtocols: latin1('\x02h2\x08http/1.1') },
          socket: { data() {}, error() {}, connectError() {}, handshake() {} },
        })
        return () => s.terminate()
      },
    ],
    [
      'node:tls',
      (port) => {
        const s = tlsConnect({ host: '127.0.0.1', port, servername: 'fuzz.example.test', ALPNProtocols: ['h2', 'http/1.1'], rejectUnauthorized: false })
        s.on('error', () => {})
        return () => s.destroy()
      },
    ],
  ]
  const openssl = Bun.which('openssl')
  if (openssl) {
    const base = [openssl, 's_client', '-servername', 'Fuzz.Example.test', '-alpn', 'h2,http/1.1']
    clients.push(['openssl', (port) => spawned([...base, '-connect', `127.0.0.1:${port}`])])
    clients.push(['openssl -tls1_2', (port) => spawned([...base, '-tls1_2', '-connect', `127.0.0.1:${port}`])])
  } else {
    console.warn('sni.fuzz.test.ts: openssl not found; fuzzing without its ClientHellos (apt-get install openssl)')
  }
  const curl = Bun.which('curl')
  if (curl) {
    clients.push(['curl', (port) => spawned([curl, '-sk', '--max-time', '10', `https://fuzz.example.test:${port}/`, '--resolve', `fuzz.example.test:${port}:127.0.0.1`])])
  }
  const out: { name: string; bytes: Uint8Array }[] = []
  for (const [name, run] of clients) {
    const bytes = await capture(run)
    if (bytes) out.push({ name, bytes })
    else console.warn(`sni.fuzz.test.ts: no ClientHello captured from ${name}; left out of the corpus`)
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Generated hellos: correct framing, hostile SNI/ALPN contents, and a model of the answer.
// ---------------------------------------------------------------------------------------------

const HOST_OK = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_*'

interface Generated {
  bytes: Uint8Array
  /** The model's answer for the bytes fed whole (with maxBytes applied). */
  want: PeekResult
  maxBytes: number
}

function genHostName(rng: Rng): string {
  const len = rng.pick([0, 1, 5, 20, 63, 254, 255, 256, 300, rng.int(40)])
  let s = ''
  for (let i = 0; i < len; i++) {
    s += rng.chance(0.995) ? HOST_OK[rng.int(HOST_OK.length)] : String.fromCharCode(rng.int(256))
  }
  // Some clients send the Host header's name:port as SNI; a port of 1-5 digits is accepted.
  if (rng.chance(0.03)) s += ':' + String(rng.int(10 ** (1 + rng.int(6)))).padStart(rng.int(3), '0')
  return s
}

/** `name` as the parser must read it: the host name, whether a `:port` followed, or undefined if invalid. */
function hostModel(name: string): { host: string; port: boolean } | undefined {
  if (hostValid(name)) return { host: name.toLowerCase(), port: false }
  const m = /^(.+):\d{1,5}$/.exec(name)
  if (m && name.length <= 255 && hostValid(m[1]!)) return { host: m[1]!.toLowerCase(), port: true }
  return undefined
}

function hostValid(s: string): boolean {
  if (s.length === 0 || s.length > 255) return false
  for (let i = 0; i < s.length; i++) if (!HOST_OK.includes(s[i]!)) return false
  return true
}

function generate(rng: Rng): Generated {
  const exts: Uint8Array[] = []
  let bad = false
  let serverName: string | undefined
  let portInName = false
  const alpn: string[] = []

  const ext = (type: number, body: Uint8Array) => exts.push(concat(be16(type), be16(body.length), body))

  // Some unrelated extensions, GREASE-style and random.
  for (let i = rng.int(4); i > 0; i--) {
    const type = rng.pick([0x0a0a, 0x002b, 0x0033, 0x0015, 0xfe0d, 0x1000 + rng.int(0xe000)])
    ext(type, rng.bytes(rng.pick([0, 1, 2, 32, 200])))
  }

  const sniCount = rng.chance(0.85) ? 1 : rng.pick([0, 2])
  if (sniCount > 1) bad = true
  for (let k = 0; k < sniCount; k++) {
    const entries: Uint8Array[] = []
    let hosts = 0
    const n = rng.chance(0.9) ? 1 : rng.int(4)
    if (n === 0) bad = true
    for (let i = 0; i < n; i++) {
      const nameType = rng.chance(0.9) ? 0 : rng.int(256)
      const name = genHostName(rng)
      entries.push(concat(Uint8Array.of(nameType), be16(name.length), latin1(name)))
      if (nameType === 0) {
        hosts++
        const model = hostModel(name)
        if (hosts > 1 || !model) bad = true
        else {
          serverName = model.host
          portInName = model.port
        }
      }
    }
    const list = concat(...entries)
    ext(0x0000, concat(be16(list.length), list))
  }

  const alpnCount = rng.chance(0.7) ? 1 : rng.pick([0, 0, 2])
  if (alpnCount > 1) bad = true
  for (let k = 0; k < alpnCount; k++) {
    const protos: Uint8Array[] = []
    const n = rng.chance(0.9) ? 1 + rng.int(4) : 0
    if (n === 0) bad = true
    for (let i = 0; i < n; i++) {
      const len = rng.chance(0.95) ? 1 + rng.int(12) : 0
      if (len === 0) bad = true
      const p = rng.bytes(len)
      protos.push(concat(Uint8Array.of(len), p))
      alpn.push(String.fromCharCode(...p))
    }
    const list = concat(...protos)
    ext(0x0010, concat(be16(list.length), list))
  }

  // Shuffle so SNI/ALPN appear anywhere among the others.
  for (let i = exts.length - 1; i > 0; i--) {
    const j = rng.int(i + 1)
    ;[exts[i], exts[j]] = [exts[j]!, exts[i]!]
  }
  if (rng.chance(0.05)) ext(0x0015, new Uint8Array(rng.int(20_000))) // padding, maybe past the cap

  const extBlock = concat(...exts)
  const sid = rng.bytes(rng.int(33))
  const body = concat(
    Uint8Array.of(0x03, 0x03),
    rng.bytes(32),
    Uint8Array.of(sid.length),
    sid,
    be16(4),
    Uint8Array.of(0x13, 0x01, 0xc0, 0x2f),
    Uint8Array.of(1, 0),
    be16(extBlock.length),
    extBlock,
  )
  const msg = concat(Uint8Array.of(0x01, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff), body)
  const small = rng.chance(0.3)
  const records = toRecords(msg, () => (small ? 1 + rng.int(200) : 1 + rng.int(16384)))
  const maxBytes = rng.chance(0.2) ? 1 + rng.int(records.length * 2) : DEFAULT_MAX_HELLO_BYTES
  // Bytes after the hello (early data, garbage) must not change the answer.
  const bytes = rng.chance(0.3) ? concat(records, rng.bytes(1 + rng.int(64))) : records

  let want: PeekResult
  if (records.length > maxBytes) want = { kind: 'invalid', reason: '*' }
  else if (bad) want = { kind: 'invalid', reason: '*' }
  else want = { kind: 'hello', serverName, alpn, length: records.length, ...(portInName ? { portInServerName: true as const } : {}) }
  return { bytes, want, maxBytes }
}

// ---------------------------------------------------------------------------------------------
// Mutators over the real corpus.
// ---------------------------------------------------------------------------------------------

type Mutator = (rng: Rng, seed: Uint8Array) => Uint8Array

const MUTATORS: [name: string, fn: Mutator][] = [
  ['random bytes', (rng) => rng.bytes(rng.int(600))],
  [
    'random bytes after a TLS record header',
    (rng) => concat(Uint8Array.of(0x16, 0x03, rng.int(6), rng.int(256), rng.int(256), rng.chance(0.8) ? 1 : rng.int(256)), rng.bytes(rng.int(2000))),
  ],
  [
    'bit flips',
    (rng, s) => {
      const out = s.slice()
      for (let i = 1 + rng.int(8); i > 0; i--) {
        const at = rng.int(out.length)
        out[at] = out[at]! ^ (1 << rng.int(8))
      }
      return out
    },
  ],
  ['truncation', (rng, s) => s.slice(0, rng.int(s.length + 1))],
  [
    'length-field corruption',
    (rng, s) => {
      const out = s.slice()
      const fields = lengthFields(s)
      for (let i = 1 + (rng.chance(0.2) ? rng.int(3) : 0); i > 0; i--) {
        const f = rng.pick(fields)
        let v = 0
        for (let k = 0; k < f.width; k++) v = v * 256 + out[f.at + k]!
        const max = 2 ** (8 * f.width) - 1
        v = rng.pick([0, 1, max, v - 1, v + 1, v * 2, rng.int(max + 1)])
        v = Math.min(max, Math.max(0, v))
        for (let k = f.width - 1; k >= 0; k--) {
          out[f.at + k] = v & 0xff
          v = Math.floor(v / 256)
        }
      }
      return out
    },
  ],
  [
    'insertion',
    (rng, s) => {
      const at = rng.int(s.length + 1)
      return concat(s.subarray(0, at), rng.bytes(1 + rng.int(16)), s.subarray(at))
    },
  ],
  [
    'deletion',
    (rng, s) => {
      const at = rng.int(s.length)
      return concat(s.subarray(0, at), s.subarray(at + 1 + rng.int(16)))
    },
  ],
  [
    'duplicated slice',
    (rng, s) => {
      const a = rng.int(s.length)
      const b = Math.min(s.length, a + 1 + rng.int(64))
      return concat(s.subarray(0, b), s.subarray(a, b), s.subarray(b))
    },
  ],
  [
    're-recorded, then a bit flip in the record layer',
    (rng, s) => {
      const out = toRecords(handshakeOf(s), () => 1 + rng.int(300))
      const at = rng.int(Math.min(out.length, 64))
      out[at] = out[at]! ^ (1 << rng.int(8))
      return out
    },
  ],
]

// ---------------------------------------------------------------------------------------------
// Reference model: a deliberately different, simple implementation of the same rules, for a
// differential check on every input. It reassembles first and then parses with a cursor that
// throws when it runs out — fine in a test, and independent of the parser's bounds arithmetic.
// ---------------------------------------------------------------------------------------------

type RefResult = { kind: 'incomplete' } | { kind: 'not-tls' } | { kind: 'invalid' } | Extract<PeekResult, { kind: 'hello' }>

class Bad extends Error {}

function reference(input: Uint8Array, maxBytes: number): RefResult {
  const buf = input.subarray(0, maxBytes)
  const capped = (): RefResult => (buf.length >= maxBytes ? { kind: 'invalid' } : { kind: 'incomplete' })
  if (buf.length === 0) return capped()
  if (buf[0] !== 0x16) return { kind: 'not-tls' }
  if (buf.length >= 2 && buf[1] !== 0x03) return { kind: 'not-tls' }
  if (buf.length >= 3 && buf[2]! > 0x04) return { kind: 'not-tls' }

  const msg: number[] = []
  let pos = 0
  let total = Infinity
  while (msg.length < total) {
    if (pos + 5 > buf.length) {
      // A partial header already visibly wrong is a decision too.
      if (pos < buf.length && buf[pos] !== 0x16) return { kind: 'invalid' }
      if (pos + 1 < buf.length && buf[pos + 1] !== 0x03) return { kind: 'invalid' }
      if (pos + 2 < buf.length && buf[pos + 2]! > 0x04) return { kind: 'invalid' }
      return capped()
    }
    if (buf[pos] !== 0x16 || buf[pos + 1] !== 0x03 || buf[pos + 2]! > 0x04) return { kind: 'invalid' }
    const len = buf[pos + 3]! * 256 + buf[pos + 4]!
    if (len === 0 || len > 16384 || pos + 5 + len > maxBytes) return { kind: 'invalid' }
    for (let i = pos + 5; i < Math.min(pos + 5 + len, buf.length); i++) {
      msg.push(buf[i]!)
      if (msg.length === 1 && msg[0] !== 0x01) return { kind: 'invalid' }
      if (msg.length === 4) total = 4 + msg[1]! * 65536 + msg[2]! * 256 + msg[3]!
    }
    if (pos + 5 + len > buf.length) return capped()
    if (msg.length > total) return { kind: 'invalid' }
    pos += 5 + len
  }

  let at = 4
  const take = (k: number): number[] => {
    if (at + k > msg.length) throw new Bad()
    const out = msg.slice(at, at + k)
    at += k
    return out
  }
  const num = (k: number): number => take(k).reduce((a, b) => a * 256 + b, 0)
  try {
    if (take(2)[0] !== 0x03) throw new Bad()
    take(32)
    const sid = num(1)
    if (sid > 32) throw new Bad()
    take(sid)
    const cs = num(2)
    if (cs < 2 || cs % 2 === 1) throw new Bad()
    take(cs)
    const cm = num(1)
    if (cm < 1) throw new Bad()
    take(cm)
    let serverName: string | undefined
    let portInServerName = false
    const alpn: string[] = []
    if (at < msg.length) {
      if (num(2) !== msg.length - at) throw new Bad()
      const seen = new Set<number>()
      while (at < msg.length) {
        const type = num(2)
        const body = take(num(2))
        if (type !== 0 && type !== 16) continue
        if (seen.has(type)) throw new Bad()
        seen.add(type)
        const list = body.slice(2)
        if (body.length < 2 || body[0]! * 256 + body[1]! !== list.length || list.length === 0) throw new Bad()
        let q = 0
        let hosts = 0
        while (q < list.length) {
          if (type === 0) {
            if (q + 3 > list.length) throw new Bad()
            const nameType = list[q]!
            const len = list[q + 1]! * 256 + list[q + 2]!
            const name = list.slice(q + 3, q + 3 + len)
            if (name.length !== len) throw new Bad()
            if (nameType === 0) {
              if (++hosts > 1 || len === 0 || len > 255) throw new Bad()
              const s = String.fromCharCode(...name)
              const m = /^([A-Za-z0-9._*-]+)(:\d{1,5})?$/.exec(s)
              if (!m) throw new Bad()
              serverName = m[1]!.toLowerCase()
              portInServerName = m[2] !== undefined
            }
            q += 3 + len
          } else {
            const len = list[q]!
            const name = list.slice(q + 1, q + 1 + len)
            if (len === 0 || name.length !== len) throw new Bad()
            alpn.push(String.fromCharCode(...name))
            q += 1 + len
          }
        }
      }
    }
    return { kind: 'hello', serverName, alpn, length: pos, ...(portInServerName ? { portInServerName: true as const } : {}) }
  } catch (err) {
    if (err instanceof Bad) return { kind: 'invalid' }
    throw err
  }
}

/** Compares the parser's answer with the reference's; undefined when they agree. */
function checkReference(got: PeekResult, want: RefResult): string | undefined {
  switch (want.kind) {
    case 'incomplete':
      // The parser may reject early what the reference only sees once complete.
      return got.kind === 'need-more' || got.kind === 'invalid' ? undefined : 'reference says incomplete'
    case 'hello':
      return Bun.deepEquals(got, want) ? undefined : `reference says ${JSON.stringify(want)}`
    default:
      return got.kind === want.kind ? undefined : `reference says ${want.kind}`
  }
}

// ---------------------------------------------------------------------------------------------
// Checks.
// ---------------------------------------------------------------------------------------------

const HOST_RE = /^[a-z0-9._*-]{1,255}$/

/** Returns a problem description, or undefined when `r` is a well-formed answer for `buf`. */
function checkWellFormed(buf: Uint8Array, maxBytes: number, r: PeekResult): string | undefined {
  switch (r.kind) {
    case 'need-more':
      return buf.length < maxBytes ? undefined : `need-more with ${buf.length} bytes >= maxBytes ${maxBytes}`
    case 'not-tls':
      return undefined
    case 'invalid':
      return typeof r.reason === 'string' && r.reason.length > 0 ? undefined : 'invalid without a reason'
    case 'hello': {
      if (!Number.isInteger(r.length) || r.length < 6 || r.length > buf.length || r.length > maxBytes) return `bad length ${r.length}`
      if (r.serverName !== undefined && !HOST_RE.test(r.serverName)) return `bad serverName ${JSON.stringify(r.serverName)}`
      if (!Array.isArray(r.alpn)) return 'alpn is not an array'
      for (const p of r.alpn) {
        if (typeof p !== 'string' || p.length === 0 || p.length > 255) return `bad ALPN entry ${JSON.stringify(p)}`
        for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) > 255) return `ALPN entry with a char > 255`
      }
      return undefined
    }
    default:
      return `unknown kind ${JSON.stringify(r)}`
  }
}

/** Properties every answer has, beyond its shape: decisions are final, prefixes agree. */
function checkStable(rng: Rng, buf: Uint8Array, maxBytes: number, r: PeekResult): string | undefined {
  const options = { maxBytes }
  if (r.kind === 'need-more') {
    // A prefix of an undecided input is undecided (else the decision would have changed).
    if (buf.length > 0) {
      const p = peekClientHello(buf.subarray(0, rng.int(buf.length)), options)
      if (p.kind !== 'need-more') return `a prefix of a need-more input gave ${JSON.stringify(p)}`
    }
    return undefined
  }
  // A decision never changes when more bytes arrive.
  const longer = peekClientHello(concat(buf, rng.bytes(1 + rng.int(32))), options)
  if (!Bun.deepEquals(longer, r)) return `more bytes changed ${JSON.stringify(r)} into ${JSON.stringify(longer)}`
  if (r.kind === 'hello') {
    // The hello is decided by exactly its own bytes: any strict prefix waits for more.
    const exact = peekClientHello(buf.subarray(0, r.length), options)
    if (!Bun.deepEquals(exact, r)) return `the hello's own bytes gave ${JSON.stringify(exact)}`
    const p = peekClientHello(buf.subarray(0, rng.int(r.length)), options)
    if (p.kind !== 'need-more') return `a strict prefix of a hello gave ${JSON.stringify(p)}`
  }
  return undefined
}

function hex(b: Uint8Array, max = 4096): string {
  const s = Buffer.from(b.subarray(0, max)).toString('hex')
  return b.length > max ? `${s}… (${b.length} bytes)` : s
}

// ---------------------------------------------------------------------------------------------

const corpus = await realCorpus()

test(`peekClientHello() and ja4Fingerprint() survive ${ITERATIONS} fuzzed inputs (seed ${SEED})`, () => {
  console.log(`sni fuzz: seed ${SEED} (reproduce with WARREN_FUZZ_SEED=${SEED}), ${ITERATIONS} inputs, corpus: ${corpus.map((c) => `${c.name} ${c.bytes.length}B`).join(', ')}`)
  expect(corpus.length).toBeGreaterThanOrEqual(1) // setup: the in-process clients at least
  const rng = makeRng(SEED)
  const counts: Record<string, number> = { 'need-more': 0, 'not-tls': 0, invalid: 0, hello: 0 }
  const started = performance.now()
  let ran = 0

  for (let i = 0; i < ITERATIONS; i++) {
    if ((i & 1023) === 0 && performance.now() - started > TIME_BUDGET_MS) break
    let source: string
    let buf: Uint8Array
    let maxBytes = DEFAULT_MAX_HELLO_BYTES
    let want: PeekResult | undefined
    if (rng.chance(0.2)) {
      source = 'generated hello'
      const g = generate(rng)
      buf = g.bytes
      maxBytes = g.maxBytes
      want = g.want
    } else {
      const [name, mutate] = rng.pick(MUTATORS)
      const seedHello = rng.pick(corpus)
      source = `${name} of ${seedHello.name}`
      buf = mutate(rng, seedHello.bytes)
      if (rng.chance(0.1)) maxBytes = 1 + rng.int(2 * buf.length + 1)
    }

    const fail = (problem: string): never => {
      throw new Error(`sni fuzz: seed ${SEED}, input #${i} (${source}, maxBytes ${maxBytes}): ${problem}\ninput: ${hex(buf)}`)
    }
    let r: PeekResult
    try {
      r = peekClientHello(buf, { maxBytes })
    } catch (err) {
      return fail(`threw ${String(err)}`)
    }
    const problem = checkWellFormed(buf, maxBytes, r) ?? checkReference(r, reference(buf, maxBytes)) ?? checkStable(rng, buf, maxBytes, r)
    if (problem !== undefined) fail(problem)
    // The edge fingerprints hellos it routes (conn.tls.ja4_fingerprint): never a throw, always a JA4.
    let ja4: string | undefined
    try {
      ja4 = ja4Fingerprint(buf)
    } catch (err) {
      return fail(`ja4Fingerprint threw ${String(err)}`)
    }
    if (r.kind === 'hello' && (ja4 === undefined || !/^t(13|12|11|10|s3|00)[di]\d{4}[0-9A-Za-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$/.test(ja4))) fail(`a routed hello got JA4 ${ja4}`)
    if (want !== undefined) {
      const ok = want.kind === 'invalid' ? r.kind === 'invalid' : Bun.deepEquals(r, want)
      if (!ok) fail(`model says ${JSON.stringify(want)}, got ${JSON.stringify(r)}`)
    }
    counts[r.kind]!++
    ran++
  }

  const ms = Math.round(performance.now() - started)
  console.log(`sni fuzz: ${ran} inputs in ${ms} ms: ${JSON.stringify(counts)}`)
  // Each kind of answer was actually reached, so the fuzzer is not stuck on one branch.
  for (const kind of Object.keys(counts)) expect(counts[kind]).toBeGreaterThan(0)
  // A slow machine may stop early on time; it must still have covered a meaningful share.
  expect(ran).toBeGreaterThanOrEqual(Math.min(ITERATIONS, 20_000))
}, Math.max(60_000, ITERATIONS))
