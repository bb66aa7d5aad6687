/**
 * TLS ClientHello peeking for the edge's single TLS port: read the server name (SNI) and the ALPN
 * list from the first bytes a client sends, before any handshake, so the listener can route the
 * connection (passthrough relay or in-process termination) without consuming the bytes.
 *
 * The parser is written for hostile input: every length field is checked against its container
 * before it is used, nothing is read past the end of `buf`, and no input makes it throw. It is
 * also incremental in the only way a caller needs: feed it the bytes received so far, and it says
 * `need-more` until it can decide. A strict prefix of a valid ClientHello is always `need-more`,
 * and a decision never changes when more bytes arrive.
 *
 * References: RFC 8446 §4.1.2 and §5.1 (record layer, ClientHello), RFC 5246 §6.2.1 and §7.4.1.2,
 * RFC 6066 §3 (server_name), RFC 7301 §3.1 (ALPN).
 */

export type PeekResult =
  /** Not enough bytes yet for a decision. Only ever returned while `buf.length < maxBytes`. */
  | { kind: 'need-more' }
  /** The first bytes are not a TLS handshake record (plain HTTP, SSH, SSLv2-style hello, …). */
  | { kind: 'not-tls' }
  /** It starts like TLS, but the ClientHello is malformed or larger than `maxBytes`. */
  | { kind: 'invalid'; reason: string }
  /**
   * A complete ClientHello. `length` is the number of bytes of the record(s) that carry it; bytes
   * after it (e.g. TLS 1.3 early data) belong to the rest of the stream.
   */
  | {
      kind: 'hello'
      serverName: string | undefined
      alpn: string[]
      length: number
      /** The client sent `name:port`; `serverName` is the name. A TLS server matching certificates on the raw SNI would miss it. */
      portInServerName?: true
    }

export interface PeekOptions {
  /** Largest number of bytes the ClientHello record(s) may take; more is `invalid`. Default 16 KiB. */
  maxBytes?: number
}

/**
 * Default cap on the ClientHello record(s). Real hellos measured 0.2–1.5 KiB (the largest from
 * BoringSSL with a post-quantum key share), so this leaves room for bigger key shares and tickets.
 */
export const DEFAULT_MAX_HELLO_BYTES = 16 * 1024

const RECORD_HEADER = 5
const HANDSHAKE_HEADER = 4
/** RFC 8446 §5.1: a plaintext record fragment MUST NOT exceed 2^14 bytes. */
const MAX_FRAGMENT = 1 << 14
const CONTENT_HANDSHAKE = 0x16
const HANDSHAKE_CLIENT_HELLO = 0x01
const EXT_SERVER_NAME = 0x0000
const EXT_ALPN = 0x0010
const NAME_TYPE_HOST = 0x00
const MAX_HOST_NAME = 255
const MAX_SESSION_ID = 32

const NEED_MORE: PeekResult = Object.freeze({ kind: 'need-more' })
const NOT_TLS: PeekResult = Object.freeze({ kind: 'not-tls' })

/**
 * Host name bytes → lower-cased char code, or 0 when the byte is not allowed. Allowed:
 * letters (either case), digits, `.`, `-`, `_` and `*`. Everything else — spaces, `/`, `:`,
 * NUL, non-ASCII (including raw UTF-8; IDNs arrive as punycode) — makes the hello invalid.
 */
const HOST_CHAR = buildHostCharTable()

function buildHostCharTable(): Uint8Array {
  const table = new Uint8Array(256)
  for (let c = 0x61; c <= 0x7a; c++) table[c] = c // a-z
  for (let c = 0x41; c <= 0x5a; c++) table[c] = c + 0x20 // A-Z → a-z
  for (let c = 0x30; c <= 0x39; c++) table[c] = c // 0-9
  for (const c of [0x2e, 0x2d, 0x5f, 0x2a]) table[c] = c // . - _ *
  return table
}

function invalid(reason: string): PeekResult {
  return { kind: 'invalid', reason }
}

/**
 * Record versions we accept: 0x0300 (SSL 3.0, still used by some stacks for the first record)
 * through 0x0304. Anything else after 0x16 means the stream is not TLS at all.
 */
function isRecordVersion(major: number, minor: number): boolean {
  return major === 0x03 && minor <= 0x04
}

/**
 * Peeks at the bytes a client sent first and, once they hold a whole ClientHello, returns its SNI
 * host name (lower-cased) and ALPN protocols. Handles a ClientHello split across several TLS
 * records and across reads; call it again with all bytes received so far until it stops saying
 * `need-more`. Never throws, and never copies in the common single-record case.
 *
 * @example
 * ```ts
 * const peek = peekClientHello(received)
 * if (peek.kind === 'need-more') return // wait for the next read
 * if (peek.kind === 'hello') route(peek.serverName, peek.alpn)
 * else socket.end()
 * ```
 */
export function peekClientHello(buf: Uint8Array, options?: PeekOptions): PeekResult {
  const maxBytes = normalizeMax(options?.maxBytes)
  // Nothing past the cap can matter, so look only at the first maxBytes bytes: the answer then
  // stays the same however many more arrive, even for caps too small to hold a record header.
  const view = buf.length > maxBytes ? buf.subarray(0, maxBytes) : buf
  const result = peek(view, maxBytes)
  return result === NEED_MORE && view.length >= maxBytes ? oversize(maxBytes) : result
}

function peek(buf: Uint8Array, maxBytes: number): PeekResult {
  const n = buf.length

  // First record header. Decide not-tls from as few bytes as possible so that a plain-text
  // protocol is rejected on its first byte (SSLv2-style hellos start with a byte >= 0x80).
  if (n < 1) return NEED_MORE
  if (buf[0] !== CONTENT_HANDSHAKE) return NOT_TLS
  if (n < 3) return n < 2 || buf[1] === 0x03 ? NEED_MORE : NOT_TLS
  if (!isRecordVersion(buf[1]!, buf[2]!)) return NOT_TLS
  if (n < RECORD_HEADER) return NEED_MORE

  const fragLen = (buf[3]! << 8) | buf[4]!
  const bad = checkRecord(fragLen, 0, maxBytes)
  if (bad !== undefined) return bad

  // The handshake type may already be in view; reject a non-ClientHello before waiting for more.
  if (n > RECORD_HEADER && buf[5] !== HANDSHAKE_CLIENT_HELLO) {
    return invalid('first handshake message is not a ClientHello')
  }
  if (fragLen >= HANDSHAKE_HEADER) {
    if (n < RECORD_HEADER + HANDSHAKE_HEADER) return NEED_MORE
    const msgLen = (buf[6]! << 16) | (buf[7]! << 8) | buf[8]!
    const total = HANDSHAKE_HEADER + msgLen
    if (total <= fragLen) {
      // Fast path: the whole ClientHello is inside the first record; parse it in place.
      // It is the client's whole first flight and (TLS 1.3) precedes a key change, which
      // RFC 8446 §5.1 requires to fall on a record boundary: the record holds nothing else.
      if (total !== fragLen) return invalid('record holds data after the ClientHello')
      const end = RECORD_HEADER + fragLen
      if (n < end) return NEED_MORE
      return parseClientHello(buf, RECORD_HEADER + HANDSHAKE_HEADER, end, end)
    }
  }
  return reassemble(buf, maxBytes)
}

function normalizeMax(maxBytes: number | undefined): number {
  if (maxBytes === undefined || !(maxBytes >= 0)) return DEFAULT_MAX_HELLO_BYTES
  return Math.floor(Math.min(maxBytes, Number.MAX_SAFE_INTEGER))
}

function oversize(maxBytes: number): PeekResult {
  return invalid(`ClientHello exceeds ${maxBytes} bytes`)
}

/** Checks one record's fragment length, given where the record starts in the stream. */
function checkRecord(fragLen: number, recordStart: number, maxBytes: number): PeekResult | undefined {
  // RFC 8446 §5.1: zero-length handshake fragments MUST NOT be sent.
  if (fragLen === 0) return invalid('empty handshake record')
  if (fragLen > MAX_FRAGMENT) return invalid(`record length ${fragLen} exceeds ${MAX_FRAGMENT}`)
  if (recordStart + RECORD_HEADER + fragLen > maxBytes) return oversize(maxBytes)
  return undefined
}

/**
 * Slow path: the ClientHello spans several records. Walks the record layer, learns the handshake
 * length from the first four handshake bytes (which may themselves be split), and once every
 * fragment is in, copies them into one contiguous message to parse.
 */
function reassemble(buf: Uint8Array, maxBytes: number): PeekResult {
  const n = buf.length
  let pos = 0
  let declared = 0 // handshake bytes the records seen so far declare
  let total = -1 // handshake header + body, once known
  let headerGot = 0
  let header = 0 // the 4 handshake header bytes, accumulated
  // Fragment boundaries as [start, end) pairs; needed only once the message is complete.
  const frags: number[] = []

  for (;;) {
    // Another record is needed; don't wait for one that could only end beyond the cap. This is
    // checked before its header is read so the answer doesn't depend on how much of it arrived.
    if (pos + RECORD_HEADER + 1 > maxBytes) return oversize(maxBytes)
    if (pos + RECORD_HEADER > n) return checkPartialHeader(buf, pos)
    if (buf[pos] !== CONTENT_HANDSHAKE) {
      return invalid('ClientHello interrupted by a non-handshake record')
    }
    if (!isRecordVersion(buf[pos + 1]!, buf[pos + 2]!)) return invalid('bad record version')
    const fragLen = (buf[pos + 3]! << 8) | buf[pos + 4]!
    const bad = checkRecord(fragLen, pos, maxBytes)
    if (bad !== undefined) return bad

    const start = pos + RECORD_HEADER
    const end = start + fragLen
    const avail = end < n ? end : n
    declared += fragLen

    // The handshake header may itself be split across records. (Its type byte, buf[5], was
    // already checked by peek().)
    for (let i = start; headerGot < HANDSHAKE_HEADER && i < avail; i++) {
      header = header * 256 + buf[i]!
      headerGot++
    }
    if (total < 0 && headerGot === HANDSHAKE_HEADER) {
      total = HANDSHAKE_HEADER + (header & 0xffffff)
      // The rest needs at least one more record: header plus the missing bytes.
      if (total > declared && end + RECORD_HEADER + (total - declared) > maxBytes) {
        return oversize(maxBytes)
      }
    }
    // RFC 8446 §5.1: the ClientHello must end on a record boundary.
    if (total >= 0 && declared > total) return invalid('record holds data after the ClientHello')
    if (avail < end) return NEED_MORE
    frags.push(start, end)
    pos = end
    if (declared === total) break
  }

  // Every fragment is in: copy them into one contiguous message. Bounded by maxBytes.
  const msg = new Uint8Array(total)
  let off = 0
  for (let k = 0; k < frags.length; k += 2) {
    const s = frags[k]!
    const e = frags[k + 1]!
    msg.set(buf.subarray(s, e), off)
    off += e - s
  }
  return parseClientHello(msg, HANDSHAKE_HEADER, total, pos)
}

/** A record header cut short: reject early what can already be seen to be wrong. */
function checkPartialHeader(buf: Uint8Array, pos: number): PeekResult {
  const n = buf.length
  if (pos < n && buf[pos] !== CONTENT_HANDSHAKE) {
    return invalid('ClientHello interrupted by a non-handshake record')
  }
  if (pos + 1 < n && buf[pos + 1] !== 0x03) return invalid('bad record version')
  if (pos + 2 < n && !isRecordVersion(buf[pos + 1]!, buf[pos + 2]!)) return invalid('bad record version')
  return NEED_MORE
}

/**
 * Parses a ClientHello body in `b[start, end)` (the handshake header already stripped).
 * `length` is what to report as the size of the record(s) in the stream.
 */
function parseClientHello(b: Uint8Array, start: number, end: number, length: number): PeekResult {
  let p = start
  // legacy_version (2) + random (32)
  if (p + 34 > end) return invalid('ClientHello too short')
  if (b[p] !== 0x03) return invalid('bad ClientHello version')
  p += 34

  // legacy_session_id <0..32>
  if (p + 1 > end) return invalid('ClientHello too short')
  const sidLen = b[p]!
  if (sidLen > MAX_SESSION_ID) return invalid('session id longer than 32 bytes')
  p += 1 + sidLen

  // cipher_suites <2..2^16-2>, pairs of bytes
  if (p + 2 > end) return invalid('ClientHello too short')
  const csLen = (b[p]! << 8) | b[p + 1]!
  if (csLen < 2 || (csLen & 1) !== 0) return invalid('bad cipher suites length')
  p += 2 + csLen

  // legacy_compression_methods <1..2^8-1>
  if (p + 1 > end) return invalid('ClientHello too short')
  const cmLen = b[p]!
  if (cmLen < 1) return invalid('no compression methods')
  p += 1 + cmLen
  if (p > end) return invalid('ClientHello too short')

  let serverName: string | undefined
  let portInServerName = false
  const alpn: string[] = []
  // Pre-TLS-1.2 clients may stop here, with no extensions block at all.
  if (p === end) return { kind: 'hello', serverName, alpn, length }

  if (p + 2 > end) return invalid('ClientHello too short')
  const extLen = (b[p]! << 8) | b[p + 1]!
  p += 2
  if (p + extLen !== end) return invalid('extensions length does not match the ClientHello')

  // Duplicates are forbidden (RFC 8446 §4.2); for the two we route on they would also be
  // ambiguous — a backend could read a different name than the one we routed by.
  let seenSni = false
  let seenAlpn = false
  while (p < end) {
    if (p + 4 > end) return invalid('truncated extension header')
    const type = (b[p]! << 8) | b[p + 1]!
    const len = (b[p + 2]! << 8) | b[p + 3]!
    p += 4
    const extEnd = p + len
    if (extEnd > end) return invalid('extension overruns the ClientHello')
    if (type === EXT_SERVER_NAME) {
      if (seenSni) return invalid('duplicate server_name extension')
      seenSni = true
      const r = parseServerName(b, p, extEnd)
      if ('kind' in r) return r
      serverName = r.name === '' ? undefined : r.name
      portInServerName = r.port
    } else if (type === EXT_ALPN) {
      if (seenAlpn) return invalid('duplicate ALPN extension')
      seenAlpn = true
      const bad = parseAlpn(b, p, extEnd, alpn)
      if (bad !== undefined) return bad
    }
    p = extEnd
  }
  return portInServerName ? { kind: 'hello', serverName, alpn, length, portInServerName } : { kind: 'hello', serverName, alpn, length }
}

/**
 * server_name extension (RFC 6066 §3). Returns the lower-cased host name ('' when the list has no
 * host_name entry) and whether a `:port` followed it, or an invalid result.
 */
function parseServerName(b: Uint8Array, p: number, end: number): { name: string; port: boolean } | PeekResult {
  if (p + 2 > end) return invalid('truncated server_name extension')
  const listLen = (b[p]! << 8) | b[p + 1]!
  p += 2
  if (p + listLen !== end) return invalid('server_name list length does not match the extension')
  if (listLen === 0) return invalid('empty server_name list')
  let host = ''
  let port = false
  let seenHost = false
  while (p < end) {
    if (p + 3 > end) return invalid('truncated server_name entry')
    const nameType = b[p]!
    const len = (b[p + 1]! << 8) | b[p + 2]!
    p += 3
    if (p + len > end) return invalid('server name overruns the extension')
    if (nameType === NAME_TYPE_HOST) {
      // "The ServerNameList MUST NOT contain more than one name of the same name_type."
      if (seenHost) return invalid('more than one host_name in server_name')
      seenHost = true
      if (len === 0) return invalid('empty server name')
      if (len > MAX_HOST_NAME) return invalid(`server name longer than ${MAX_HOST_NAME} bytes`)
      for (let i = p; i < p + len; i++) {
        const c = HOST_CHAR[b[i]!]!
        if (c !== 0) {
          host += String.fromCharCode(c)
          continue
        }
        // Some clients put the Host header's `name:port` into SNI; the name is still usable.
        if (b[i] === COLON && host !== '' && isPort(b, i + 1, p + len)) {
          port = true
          break
        }
        return invalid('server name has a byte outside [a-z0-9.-_*]')
      }
    }
    // Other name types (none are defined) are skipped, as RFC 6066 leaves room for them.
    p += len
  }
  return { name: host, port }
}

const COLON = 0x3a

/** The name of an SNI value as a TLS library hands it over, without the `:port` some clients add. */
export function serverNameHost(name: string): string {
  return name.replace(/:\d{1,5}$/, '').toLowerCase()
}

/** 1 to 5 ASCII digits filling b[from, end). */
function isPort(b: Uint8Array, from: number, end: number): boolean {
  if (end - from < 1 || end - from > 5) return false
  for (let i = from; i < end; i++) if (b[i]! < 0x30 || b[i]! > 0x39) return false
  return true
}

/** ALPN extension (RFC 7301 §3.1): a non-empty list of non-empty byte strings. */
function parseAlpn(b: Uint8Array, p: number, end: number, out: string[]): PeekResult | undefined {
  if (p + 2 > end) return invalid('truncated ALPN extension')
  const listLen = (b[p]! << 8) | b[p + 1]!
  p += 2
  if (p + listLen !== end) return invalid('ALPN list length does not match the extension')
  if (listLen === 0) return invalid('empty ALPN list')
  while (p < end) {
    const len = b[p]!
    p += 1
    if (len === 0) return invalid('empty ALPN protocol name')
    if (p + len > end) return invalid('ALPN protocol name overruns the extension')
    // Protocol IDs are opaque bytes; decode 1:1 (latin1) so nothing is lost or replaced.
    let name = ''
    for (let i = p; i < p + len; i++) name += String.fromCharCode(b[i]!)
    out.push(name)
    p += len
  }
  return undefined
}
