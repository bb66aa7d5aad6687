import { CODES, type ErrorCode } from '../lib/errors.ts'
import { mayDropOption } from '../proxy/hop-headers.ts'

/**
 * The HTTP/1.1 request-head parser of the edge's connection engine (RFC 9112): one pass over bytes,
 * nginx-style. It checks every byte once, keeps header lines as offsets into the buffer (strings are
 * made only when someone asks, see head.ts), and decides framing. It is strict wherever leniency lets
 * two parsers read one request two ways (request smuggling): each refusal names the status the client
 * gets and a stable code, and nothing of a refused request ever reaches an upstream.
 */

/** Why a head was refused: the status and code the client gets, and a short reason for logs and tests. */
export class HeadRefusal extends Error {
  readonly status: number
  readonly code: ErrorCode
  constructor(status: number, code: ErrorCode, reason: string) {
    super(reason)
    this.name = 'HeadRefusal'
    this.status = status
    this.code = code
  }
}

export interface HeadLimits {
  /** Bytes from the request line to the blank line, both included. */
  maxHeadBytes: number
  /** Header lines. */
  maxHeaders: number
}

export const DEFAULT_LIMITS: HeadLimits = { maxHeadBytes: 16 * 1024, maxHeaders: 100 }

/** A parsed request head: strings for the request line, offsets for the header lines. */
export interface ParsedHead {
  /** The bytes the offsets point into (the caller must not change them while the head is used). */
  buf: Uint8Array
  /** Index of the request line's first byte (leading empty lines skipped). */
  start: number
  /** Index just past the blank line. */
  end: number
  method: string
  /** The request target as sent (absolute-form included). */
  target: string
  /** Path and query: the target in origin-form (absolute-form reduced to it, `*` kept). */
  path: string
  /** Minor version of HTTP/1.x. */
  minor: 0 | 1
  /** Four offsets per header line: name start, name end, value start, value end (OWS trimmed). */
  lines: number[]
  /** The host to route by: the authority of an absolute-form target, else the Host header. */
  host: string
  /** Declared body length, -1 without Content-Length (then `chunked` says whether a body follows). */
  contentLength: number
  chunked: boolean
  /** The client may send another request on this connection afterwards. */
  keepAlive: boolean
  /** `Connection: upgrade` together with an `Upgrade` header. */
  upgrade: boolean
  /** Lower-case fields `Connection` names that the edge drops (hop-headers.ts `mayDropOption`: never Host, Content-Length or the hop-by-hop ones). */
  connectionTokens: string[]
  /** The `Expect` value lower-cased (several lines joined by `, `), null without one. */
  expect: string | null
}

const CR = 13
const LF = 10
const SP = 32
const HTAB = 9
const COLON = 58
const CRLFCRLF = Buffer.from('\r\n\r\n')

/** RFC 9110 §5.6.2 tchar, as a byte table. */
export const TCHAR = new Uint8Array(256)
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1
for (let b = 48; b <= 57; b++) TCHAR[b] = 1
for (let b = 65; b <= 90; b++) TCHAR[b] = 1
for (let b = 97; b <= 122; b++) TCHAR[b] = 1

/** Field-value bytes: VCHAR, SP, HTAB, obs-text. CR, LF, NUL and other controls are not. */
export const VCHAR = new Uint8Array(256)
VCHAR[SP] = 1
VCHAR[HTAB] = 1
for (let b = 0x21; b <= 0x7e; b++) VCHAR[b] = 1
for (let b = 0x80; b <= 0xff; b++) VCHAR[b] = 1

/** Request-target bytes: visible ASCII only (RFC 3986 plus the characters browsers send unescaped). */
const TARGET = new Uint8Array(256)
for (let b = 0x21; b <= 0x7e; b++) TARGET[b] = 1

/** Host header: reg-name, IPv4, `[IPv6]`, optional `:port` (RFC 3986 §3.2.2). */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::\d{0,5})?$/
const ABSOLUTE = /^https?:\/\/([^/?#@]*)([^#]*)$/i

function bad(reason: string): HeadRefusal {
  return new HeadRefusal(400, CODES.BAD_REQUEST, reason)
}

function tooLarge(reason: string): HeadRefusal {
  return new HeadRefusal(431, CODES.HEADERS_TOO_LARGE, reason)
}

/**
 * Where the head that starts at `start` ends: the index past its blank line, or -1 while it is not
 * all there. `scanned` is how far an earlier call got, so bytes are looked at once however the head
 * arrives. Throws as soon as the limit is passed or a bare LF shows (no valid head has one), so a
 * slow or hostile client never makes the edge hold more than `maxHeadBytes`.
 */
export function findHeadEnd(buf: Buffer, start: number, end: number, scanned: number, limits: HeadLimits): number {
  // Empty lines before the request line are skipped (RFC 9112 §2.2), so they do not end the head.
  let s = start
  while (s + 1 < end && buf[s] === CR && buf[s + 1] === LF) s += 2
  const from = Math.max(s, scanned - 3)
  const found = buf.indexOf(CRLFCRLF, from)
  const at = found === -1 || found + 4 > end ? -1 : found + 4
  const stop = at === -1 ? end : at
  for (let i = buf.indexOf(LF, from); i !== -1 && i < stop; i = buf.indexOf(LF, i + 1))
    if (i === s || buf[i - 1] !== CR) throw bad('a line ends in a bare LF')
  if ((at === -1 ? end : at) - s > limits.maxHeadBytes) throw tooLarge('the request head is too large')
  return at
}

/** Trims optional whitespace (SP, HTAB) only: `String.trim` would also eat bytes like 0xA0. */
function ows(s: string): string {
  return s.replace(/^[ \t]+|[ \t]+$/g, '')
}

function lower(buf: Uint8Array, a: number, b: number): string {
  let s = ''
  for (let i = a; i < b; i++) {
    const c = buf[i]!
    s += String.fromCharCode(c >= 65 && c <= 90 ? c + 32 : c)
  }
  return s
}

/**
 * The bytes `buf[a, b)` as a string, one char per byte. Buffer's native latin1 slice: a string built a
 * char at a time is a rope that costs again wherever it is hashed or matched, and took 4-5x as long
 * for a 22-byte Host (2026-12-08).
 */
const LATIN1_SLICE = Buffer.prototype.latin1Slice as (this: Uint8Array, start: number, end: number) => string
function latin1(buf: Uint8Array, a: number, b: number): string {
  return LATIN1_SLICE.call(buf, a, b)
}

/** True when the header name `buf[n0…]` is `name` (lower-case letters and `-`), in any case. */
function named(buf: Uint8Array, n0: number, name: Uint8Array): boolean {
  // Names are tokens: `| 0x20` lower-cases letters and leaves `-`, and maps no other token byte onto a letter.
  for (let k = 0; k < name.length; k++) if ((buf[n0 + k]! | 0x20) !== name[k]) return false
  return true
}

/** Header names the parser itself reads, as bytes by length: their lines are found without making a string of any name. */
const HOST_NAME = Buffer.from('host')
const EXPECT_NAME = Buffer.from('expect')
const UPGRADE_NAME = Buffer.from('upgrade')
const CONNECTION_NAME = Buffer.from('connection')
const CONTENT_LENGTH_NAME = Buffer.from('content-length')
const TRANSFER_ENCODING_NAME = Buffer.from('transfer-encoding')

/**
 * Parses the head in `buf[start, end)`, where `end` is what `findHeadEnd` returned. Throws
 * `HeadRefusal` for anything it will not pass on.
 */
export function parseHead(buf: Uint8Array, start: number, end: number, limits: HeadLimits = DEFAULT_LIMITS): ParsedHead {
  let i = start
  while (buf[i] === CR && buf[i + 1] === LF) i += 2
  const headStart = i

  // Request line: method SP target SP HTTP/1.x CRLF.
  const m0 = i
  while (TCHAR[buf[i]!]) i++
  if (i === m0 || buf[i] !== SP) throw bad('the method is not a token followed by one space')
  // The common method without a string made per request.
  const method = i - m0 === 3 && buf[m0] === 71 && buf[m0 + 1] === 69 && buf[m0 + 2] === 84 ? 'GET' : latin1(buf, m0, i)
  const t0 = ++i
  while (TARGET[buf[i]!]) i++
  if (i === t0 || buf[i] !== SP) throw bad('the request target is empty or has invalid characters')
  const target = latin1(buf, t0, i)
  i++
  if (buf[i] !== 72 || buf[i + 1] !== 84 || buf[i + 2] !== 84 || buf[i + 3] !== 80 || buf[i + 4] !== 47)
    throw bad('the request line does not end in an HTTP version')
  const major = buf[i + 5]! - 48
  const minorDigit = buf[i + 7]! - 48
  if (major < 0 || major > 9 || buf[i + 6] !== 46 || minorDigit < 0 || minorDigit > 9) throw bad('malformed HTTP version')
  if (buf[i + 8] !== CR || buf[i + 9] !== LF) throw bad('the request line does not end in CRLF after the version')
  if (major !== 1 || minorDigit > 1) throw new HeadRefusal(505, CODES.HTTP_VERSION_NOT_SUPPORTED, 'only HTTP/1.0 and HTTP/1.1 are served here')
  const minor = minorDigit as 0 | 1
  i += 10

  const lines: number[] = []
  let host: string | undefined
  let hostCount = 0
  let contentLength = -1
  let transferEncoding: string | undefined
  let connection = ''
  let hasUpgrade = false
  let expect: string | null = null
  const stop = end - 2
  while (i < stop) {
    const n0 = i
    while (TCHAR[buf[i]!]) i++
    const n1 = i
    if (buf[i] !== COLON) {
      if (n0 === n1 && (buf[i] === SP || buf[i] === HTAB)) throw bad('obsolete line folding')
      if (buf[i] === SP || buf[i] === HTAB) throw bad('whitespace between a header name and its colon')
      throw bad('a header name is not a token')
    }
    if (n0 === n1) throw bad('a header line has an empty name')
    i++
    while (buf[i] === SP || buf[i] === HTAB) i++
    const v0 = i
    while (VCHAR[buf[i]!]) i++
    if (buf[i] !== CR || buf[i + 1] !== LF) throw bad('a header value holds a control character')
    let v1 = i
    while (v1 > v0 && (buf[v1 - 1] === SP || buf[v1 - 1] === HTAB)) v1--
    i += 2
    lines.push(n0, n1, v0, v1)
    if (lines.length > limits.maxHeaders * 4) throw tooLarge('too many header lines')
    const len = n1 - n0
    if (len === 4 && named(buf, n0, HOST_NAME)) {
      hostCount++
      host = latin1(buf, v0, v1)
    } else if (len === 14 && named(buf, n0, CONTENT_LENGTH_NAME)) {
      if (contentLength !== -1) throw bad('more than one Content-Length')
      if (v1 === v0 || v1 - v0 > 15) throw bad('malformed Content-Length')
      let n = 0
      for (let k = v0; k < v1; k++) {
        const d = buf[k]! - 48
        if (d < 0 || d > 9) throw bad('malformed Content-Length')
        n = n * 10 + d
      }
      contentLength = n
    } else if (len === 17 && named(buf, n0, TRANSFER_ENCODING_NAME)) {
      const value = lower(buf, v0, v1)
      transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`
    } else if (len === 10 && named(buf, n0, CONNECTION_NAME)) {
      const value = lower(buf, v0, v1)
      connection = connection ? `${connection},${value}` : value
    } else if (len === 7 && named(buf, n0, UPGRADE_NAME)) hasUpgrade = true
    else if (len === 6 && named(buf, n0, EXPECT_NAME)) {
      const value = lower(buf, v0, v1)
      // More than one line is refused as a value other than 100-continue would be.
      expect = expect === null ? value : `${expect}, ${value}`
    }
  }

  let chunked = false
  if (transferEncoding !== undefined) {
    if (contentLength !== -1) throw bad('both Content-Length and Transfer-Encoding')
    if (minor === 0) throw bad('Transfer-Encoding in an HTTP/1.0 request')
    const codings = transferEncoding.split(',').map(ows)
    // Without chunked last the body length is unknowable: 400 (RFC 9112 §6.3). Other codings before it
    // would reach the upstream undecoded: 501, as for any coding not understood (§6.1).
    if (codings[codings.length - 1] !== 'chunked') throw bad('Transfer-Encoding does not end in chunked')
    if (codings.length > 1) throw new HeadRefusal(501, CODES.TRANSFER_CODING_NOT_SUPPORTED, 'a transfer coding other than chunked')
    chunked = true
  }

  if (method === 'CONNECT') throw new HeadRefusal(501, CODES.METHOD_NOT_SUPPORTED, 'CONNECT is not served by this edge')
  let path = target
  let authority: string | undefined
  if (target.charCodeAt(0) !== 47) {
    const abs = ABSOLUTE.exec(target)
    if (abs) {
      // RFC 9112 §3.2.2: the target's authority wins over any Host header.
      authority = abs[1]!
      path = abs[2] || '/'
      if (path.charCodeAt(0) !== 47) path = `/${path}`
    } else if (!(target === '*' && method === 'OPTIONS')) throw bad('the request target is neither origin-form nor absolute-form')
  }
  // RFC 9112 §3.2: one Host, with a valid value; the edge also needs it on HTTP/1.0 to route.
  if (hostCount > 1) throw bad('more than one Host header')
  if (hostCount === 0) throw bad(minor === 1 ? 'an HTTP/1.1 request without Host' : 'a request without Host cannot be routed')
  if (!HOST.test(host!)) throw bad('an invalid Host header')
  if (authority !== undefined && !HOST.test(authority)) throw bad('an invalid authority in the request target')

  let close = false
  let keepAliveToken = false
  let upgradeToken = false
  const connectionTokens: string[] = []
  if (connection)
    for (const part of connection.split(',')) {
      const token = ows(part)
      if (token === 'close') close = true
      else if (token === 'keep-alive') keepAliveToken = true
      else if (token === 'upgrade') upgradeToken = true
      else if (mayDropOption(token)) connectionTokens.push(token)
    }
  return {
    buf,
    start: headStart,
    end,
    method,
    target,
    path,
    minor,
    lines,
    host: authority ?? host!,
    contentLength,
    chunked,
    keepAlive: !close && (minor === 1 || keepAliveToken),
    upgrade: upgradeToken && hasUpgrade,
    connectionTokens,
    expect,
  }
}
