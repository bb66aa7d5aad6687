/**
 * What the edge learns from the plaintext part of a TLS handshake it relays into its internal HTTPS
 * server, for `conn.tls.*`: the version, cipher suite (and, up to TLS 1.2, the ALPN protocol) from the ServerHello (Bun's
 * request handler does not expose them), and the JA4 fingerprint of the ClientHello.
 *
 * Like sni.ts, every length is checked before use and nothing throws; anything unexpected gives
 * `undefined` and the fields stay empty.
 *
 * References: RFC 8446 §4.1.3 (ServerHello, supported_versions), RFC 5246 §7.4.1.3,
 * RFC 8701 (GREASE), the JA4 specification (github.com/FoxIO-LLC/ja4, technical_details/JA4.md).
 */
import { createHash } from 'node:crypto'

const CONTENT_HANDSHAKE = 0x16
const CLIENT_HELLO = 0x01
const SERVER_HELLO = 0x02
const EXT_SERVER_NAME = 0x0000
const EXT_ALPN = 0x0010
const EXT_SIGNATURE_ALGORITHMS = 0x000d
const EXT_SUPPORTED_VERSIONS = 0x002b
/** Two full records: a ServerHello is well inside; a relay stops watching after this. */
export const MAX_WATCHED_BYTES = 2 * (5 + 16 * 1024)

/**
 * The first handshake message in `buf` (TLS records from the start of a stream) when it is of
 * `type` and complete; 'need-more' while it may still arrive; undefined when it cannot.
 */
export function firstHandshake(buf: Uint8Array, type: number): Uint8Array | 'need-more' | undefined {
  const parts: Uint8Array[] = []
  let got = 0
  let total = -1
  for (let pos = 0; total < 0 || got < total; ) {
    // Whole records only: a ServerHello shares its record with at most the rest of the server's flight.
    if (pos + 5 > buf.length) return buf.length >= MAX_WATCHED_BYTES ? undefined : 'need-more'
    if (buf[pos] !== CONTENT_HANDSHAKE || buf[pos + 1] !== 0x03) return undefined
    const end = pos + 5 + ((buf[pos + 3]! << 8) | buf[pos + 4]!)
    if (end > buf.length) return buf.length >= MAX_WATCHED_BYTES ? undefined : 'need-more'
    parts.push(buf.subarray(pos + 5, end))
    got += end - pos - 5
    if (total < 0 && got >= 4) {
      const head = Buffer.concat(parts)
      if (head[0] !== type) return undefined
      total = 4 + ((head[1]! << 16) | (head[2]! << 8) | head[3]!)
    }
    pos = end
  }
  return Buffer.concat(parts).subarray(0, total)
}

/** Reads big-endian fields from a handshake message, remembering where it is; throws past the end. */
class Reader {
  readonly b: Uint8Array
  pos: number
  constructor(b: Uint8Array, start: number) {
    this.b = b
    this.pos = start
  }
  u8(): number {
    if (this.pos + 1 > this.b.length) throw new RangeError('short')
    return this.b[this.pos++]!
  }
  u16(): number {
    return (this.u8() << 8) | this.u8()
  }
  bytes(n: number): Uint8Array {
    if (this.pos + n > this.b.length) throw new RangeError('short')
    const out = this.b.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }
  get done(): boolean {
    return this.pos >= this.b.length
  }
  /** The hello's extensions block, when there is one, as [type, data] pairs in order. */
  *extensions(): Generator<[number, Uint8Array]> {
    if (this.done) return
    const ext = new Reader(this.bytes(this.u16()), 0)
    while (!ext.done) yield [ext.u16(), ext.bytes(ext.u16())]
  }
}

function u16s(b: Uint8Array): number[] {
  const out: number[] = []
  for (let i = 0; i + 1 < b.length; i += 2) out.push((b[i]! << 8) | b[i + 1]!)
  return out
}

/** RFC 8701: 0x0a0a, 0x1a1a … 0xfafa. */
function isGrease(v: number): boolean {
  return (v & 0x0f0f) === 0x0a0a && v >> 8 === (v & 0xff)
}

const VERSIONS: Readonly<Record<number, string>> = { 0x0304: '1.3', 0x0303: '1.2', 0x0302: '1.1', 0x0301: '1.0', 0x0300: 'SSL 3.0' }

/** IANA names of the suites BoringSSL (Bun) and OpenSSL servers negotiate. */
const CIPHER_SUITES: Readonly<Record<number, string>> = {
  0x1301: 'TLS_AES_128_GCM_SHA256',
  0x1302: 'TLS_AES_256_GCM_SHA384',
  0x1303: 'TLS_CHACHA20_POLY1305_SHA256',
  0xc02b: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
  0xc02c: 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384',
  0xc02f: 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
  0xc030: 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
  0xcca8: 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256',
  0xcca9: 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256',
  0xc009: 'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA',
  0xc00a: 'TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA',
  0xc013: 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA',
  0xc014: 'TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA',
  0x009c: 'TLS_RSA_WITH_AES_128_GCM_SHA256',
  0x009d: 'TLS_RSA_WITH_AES_256_GCM_SHA384',
  0x002f: 'TLS_RSA_WITH_AES_128_CBC_SHA',
  0x0035: 'TLS_RSA_WITH_AES_256_CBC_SHA',
}

export interface ServerHelloFacts {
  version: string
  cipherSuite: string
  /** The ALPN protocol the server chose, when the ServerHello says (TLS 1.2; TLS 1.3 encrypts it). */
  alpn?: string
}

/** Version, cipher suite (and ALPN up to TLS 1.2) from a ServerHello message (`firstHandshake(…, SERVER_HELLO)`). */
export function parseServerHello(msg: Uint8Array): ServerHelloFacts | undefined {
  try {
    const r = new Reader(msg, 4)
    let version = r.u16()
    r.bytes(32)
    r.bytes(r.u8()) // session id
    const suite = r.u16()
    r.u8() // compression
    let alpn: string | undefined
    for (const [type, data] of r.extensions()) {
      if (type === EXT_SUPPORTED_VERSIONS && data.length === 2) version = (data[0]! << 8) | data[1]!
      if (type === EXT_ALPN && data.length > 3) alpn = Buffer.from(data.subarray(3, 3 + data[2]!)).toString('latin1')
    }
    const cipherSuite = CIPHER_SUITES[suite] ?? `0x${suite.toString(16).padStart(4, '0')}`
    return { version: VERSIONS[version] ?? `0x${version.toString(16)}`, cipherSuite, ...(alpn ? { alpn } : {}) }
  } catch {
    return undefined
  }
}

function hex4(v: number): string {
  return v.toString(16).padStart(4, '0')
}

function sha12(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12)
}

function twoDigits(n: number): string {
  return String(Math.min(n, 99)).padStart(2, '0')
}

const ALNUM = /^[A-Za-z0-9]$/

/** JA4's ALPN part: first and last character of the first protocol, hex digits when not alphanumeric. */
function alpnChars(alpn: Uint8Array | undefined): string {
  if (!alpn || alpn.length === 0) return '00'
  const first = String.fromCharCode(alpn[0]!)
  const last = String.fromCharCode(alpn[alpn.length - 1]!)
  if (ALNUM.test(first) && ALNUM.test(last)) return first + last
  const hex = Buffer.from(alpn).toString('hex')
  return hex[0]! + hex[hex.length - 1]!
}

/** The JA4 fingerprint of a ClientHello message (`firstHandshake(…, CLIENT_HELLO)`). */
export function ja4OfClientHello(msg: Uint8Array): string | undefined {
  try {
    const r = new Reader(msg, 4)
    const legacyVersion = r.u16()
    r.bytes(32)
    r.bytes(r.u8()) // session id
    const ciphers = u16s(r.bytes(r.u16())).filter((c) => !isGrease(c))
    r.bytes(r.u8())
    const extensions: number[] = []
    let sni = false
    let firstAlpn: Uint8Array | undefined
    let signatureAlgorithms: number[] = []
    let highest = legacyVersion
    for (const [type, data] of r.extensions()) {
      if (isGrease(type)) continue
      extensions.push(type)
      if (type === EXT_SERVER_NAME) sni = true
      if (type === EXT_ALPN && data.length > 3) firstAlpn = data.subarray(3, 3 + data[2]!)
      if (type === EXT_SIGNATURE_ALGORITHMS && data.length >= 2) signatureAlgorithms = u16s(data.subarray(2, 2 + ((data[0]! << 8) | data[1]!)))
      if (type === EXT_SUPPORTED_VERSIONS && data.length >= 1) {
        const offered = u16s(data.subarray(1, 1 + data[0]!)).filter((v) => !isGrease(v))
        if (offered.length) highest = Math.max(...offered)
      }
    }
    const version = { 0x0304: '13', 0x0303: '12', 0x0302: '11', 0x0301: '10', 0x0300: 's3' }[highest] ?? '00'
    const a = `t${version}${sni ? 'd' : 'i'}${twoDigits(ciphers.length)}${twoDigits(extensions.length)}${alpnChars(firstAlpn)}`
    const b = ciphers.length ? sha12(ciphers.map(hex4).sort().join(',')) : '000000000000'
    const counted = extensions.filter((e) => e !== EXT_SERVER_NAME && e !== EXT_ALPN).map(hex4).sort().join(',')
    const c = extensions.length ? sha12(signatureAlgorithms.length ? `${counted}_${signatureAlgorithms.map(hex4).join(',')}` : counted) : '000000000000'
    return `${a}_${b}_${c}`
  } catch {
    return undefined
  }
}

/** The JA4 fingerprint of the bytes a client sent first (the peeked ClientHello record(s)). */
export function ja4Fingerprint(records: Uint8Array): string | undefined {
  const msg = firstHandshake(records, CLIENT_HELLO)
  return msg instanceof Uint8Array ? ja4OfClientHello(msg) : undefined
}

/**
 * Watches the first bytes a TLS server sends until its ServerHello is complete, then reports what it
 * says once. Feed it every chunk; it stops buffering after the ServerHello or MAX_WATCHED_BYTES.
 */
export class ServerHelloWatcher {
  readonly #report: (facts: ServerHelloFacts | undefined) => void
  #chunks: Uint8Array[] = []
  #done = false

  constructor(report: (facts: ServerHelloFacts | undefined) => void) {
    this.#report = report
  }

  /** True once it has reported; later chunks are not looked at. */
  feed(chunk: Uint8Array): boolean {
    if (this.#done) return true
    // Usually the first chunk holds the whole ServerHello: parse it in place, copy only to wait.
    const buf = this.#chunks.length === 0 ? chunk : Buffer.concat([...this.#chunks, chunk])
    const msg = firstHandshake(buf, SERVER_HELLO)
    if (msg === 'need-more') {
      this.#chunks = [buf.slice()]
      return false
    }
    this.#done = true
    this.#chunks = []
    this.#report(msg ? parseServerHello(msg) : undefined)
    return true
  }
}
