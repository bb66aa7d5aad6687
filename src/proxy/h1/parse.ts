import { TCHAR } from '../../http1/parse-head.ts'
import { HOP_BY_HOP as HOP_HEADERS } from '../hop-headers.ts'

/**
 * HTTP/1.1 response parsing for the upstream client (RFC 9112): the head, the body framing, and an
 * incremental chunked decoder. Pure functions over bytes; nothing here touches a socket.
 *
 * The parser is strict where leniency lets a response be read two ways (request smuggling):
 * obs-fold, whitespace before the colon, Transfer-Encoding together with Content-Length, disagreeing
 * Content-Length values and malformed chunk framing are all rejected with `H1ParseError`.
 */

/** A response the edge refuses to relay; the caller answers 502 with `UPSTREAM_INVALID_RESPONSE`. */
export class H1ParseError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'H1ParseError'
  }
}

/** How the response body is delimited (RFC 9112 §6.3). */
export const Framing = {
  /** HEAD, 1xx, 204 and 304 responses, and `Content-Length: 0`. */
  None: 0,
  /** Exactly `contentLength` bytes. */
  Length: 1,
  /** `Transfer-Encoding: chunked`, decoded by `ChunkedDecoder`. */
  Chunked: 2,
  /** Everything until the upstream closes; the connection cannot be reused. */
  Close: 3,
} as const
export type Framing = (typeof Framing)[keyof typeof Framing]

export interface ResponseHead {
  status: number
  statusText: string
  /** Minor version of HTTP/1.x. */
  minor: number
  headers: Headers
  /** False when the upstream asked to close, or spoke HTTP/1.0 without `keep-alive`. */
  keepAlive: boolean
  /** The declared length, or -1 when there is no Content-Length. */
  contentLength: number
  chunked: boolean
}

/** Largest response head accepted, status line included. */
export const MAX_HEAD_BYTES = 64 * 1024

const LF = 10
const CR = 13
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// Control characters other than HTAB are not allowed in field values or the reason phrase.
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([^]*))?$/
const DIGITS = /^\d{1,15}$/

/**
 * Index just past the blank line that ends a head in `buf`, or -1 when it is not complete yet.
 * Lines may end in CRLF or a bare LF (RFC 9112 §2.2). `from` may point anywhere before the line
 * feed that ends the last header line; rescanning from `previousLength - 3` is always safe.
 */
export function findHeadEnd(buf: Uint8Array, from: number): number {
  const len = buf.length
  let i = buf.indexOf(LF, from)
  while (i !== -1) {
    const next = i + 1
    if (next >= len) return -1
    const b = buf[next]
    if (b === LF) return next + 1
    if (b === CR) {
      if (next + 1 >= len) return -1
      if (buf[next + 1] === LF) return next + 2
    }
    i = buf.indexOf(LF, next)
  }
  return -1
}

/** Gathers a response head that may span several reads, within MAX_HEAD_BYTES. */
export class HeadCollector {
  #buf: Buffer | null = null
  /** Index just past the head in the buffer `push` returned last. */
  end = -1

  /** Adds a read; returns the bytes holding the whole head (and what followed it), or null until it is complete. */
  push(chunk: Buffer): Buffer | null {
    let buf = chunk
    let from = 0
    if (this.#buf) {
      from = Math.max(0, this.#buf.length - 3)
      buf = Buffer.concat([this.#buf, chunk])
      this.#buf = null
    }
    const end = findHeadEnd(buf, from)
    if (end === -1) {
      if (buf.length > MAX_HEAD_BYTES) fail('the response head is too large')
      this.#buf = buf
      return null
    }
    if (end > MAX_HEAD_BYTES) fail('the response head is too large')
    this.end = end
    return buf
  }
}

function fail(message: string): never {
  throw new H1ParseError(message)
}

/** Hop-by-hop fields describe the upstream connection, which ends here: the parsed head never carries them. */
const HOP_BY_HOP: ReadonlySet<string> = new Set(HOP_HEADERS)

/**
 * Parses a complete head (status line, fields, blank line) decoded as latin1. `headers` holds the
 * end-to-end fields in order (repeated ones appended, so `Set-Cookie` stays separate); hop-by-hop
 * fields and those named by `Connection` are read for framing and left out. Field names and values
 * are checked by `Headers` itself (tokens; no CR, LF or NUL).
 */
export function parseResponseHead(text: string): ResponseHead {
  let eol = text.indexOf('\n')
  if (eol <= 0) fail('the response head is empty')
  const statusLine = text.charCodeAt(eol - 1) === CR ? text.slice(0, eol - 1) : text.slice(0, eol)
  const m = STATUS_LINE.exec(statusLine)
  if (!m) fail(`invalid status line ${JSON.stringify(statusLine.slice(0, 64))}`)
  const minor = m[1] === '1' ? 1 : 0
  const status = Number(m[2])
  const statusText = m[3] ?? ''
  if (status > 599) fail(`invalid status code ${status}`)
  if (BAD_VALUE.test(statusText)) fail('the reason phrase contains control characters')

  const headers = new Headers()
  let contentLength = -1
  let transferEncoding: string | null = null
  let connection = ''
  let pos = eol + 1
  for (;;) {
    eol = text.indexOf('\n', pos)
    if (eol === -1) fail('the response head does not end with a blank line')
    const end = eol > pos && text.charCodeAt(eol - 1) === CR ? eol - 1 : eol
    if (end === pos) {
      pos = eol + 1
      break
    }
    const first = text.charCodeAt(pos)
    if (first === 32 || first === 9) fail('obsolete line folding in the response head')
    const colon = text.indexOf(':', pos)
    if (colon === -1 || colon >= end || colon === pos)
      fail(`malformed header line ${JSON.stringify(text.slice(pos, Math.min(end, pos + 64)))}`)
    const name = text.slice(pos, colon)
    let a = colon + 1
    let b = end
    while (a < b && (text.charCodeAt(a) === 32 || text.charCodeAt(a) === 9)) a++
    while (b > a && (text.charCodeAt(b - 1) === 32 || text.charCodeAt(b - 1) === 9)) b--
    const value = text.slice(a, b)
    pos = eol + 1
    const lower = name.toLowerCase()
    if (lower === 'content-length') {
      // Set once below: equal repeats must not reach the client as "3, 3".
      contentLength = mergeContentLength(contentLength, value)
      continue
    }
    if (HOP_BY_HOP.has(lower)) {
      checkField(name, value)
      if (lower === 'transfer-encoding')
        transferEncoding = transferEncoding === null ? value : `${transferEncoding}, ${value}`
      else if (lower === 'connection') connection = connection ? `${connection}, ${value}` : value
      continue
    }
    try {
      headers.append(name, value)
    } catch {
      checkField(name, value)
      fail(`invalid header ${JSON.stringify(name.slice(0, 64))}`)
    }
  }
  if (pos !== text.length) fail('bytes after the blank line that ends the head')

  const chunked = isChunked(transferEncoding, contentLength, minor)
  if (contentLength !== -1) headers.set('content-length', String(contentLength))
  let close = false
  let keepAliveToken = false
  if (connection) {
    for (const part of connection.split(',')) {
      const token = part.trim().toLowerCase()
      if (token === 'close') close = true
      else if (token === 'keep-alive') keepAliveToken = true
      else if (TOKEN.test(token)) headers.delete(token)
    }
  }
  const keepAlive = !close && (minor === 1 || keepAliveToken)
  return { status, statusText, minor, headers, keepAlive, contentLength, chunked }
}

/**
 * Whether a response with these Transfer-Encoding values (joined, or null) is chunked; anything a
 * client could read two ways (with Content-Length, another coding, on HTTP/1.0) is refused.
 */
export function isChunked(transferEncoding: string | null, contentLength: number, minor: number): boolean {
  if (transferEncoding === null) return false
  if (contentLength !== -1) fail('the response has both Transfer-Encoding and Content-Length')
  // Only plain `chunked` is relayed: any other coding would reach the client undecoded.
  if (transferEncoding.trim().toLowerCase() !== 'chunked' || minor === 0)
    fail(`unsupported Transfer-Encoding ${JSON.stringify(transferEncoding.slice(0, 64))}`)
  return true
}

/** Fields that never reach `Headers` are validated the same way, so framing never reads garbage. */
function checkField(name: string, value: string): void {
  if (!TOKEN.test(name)) fail(`invalid header name ${JSON.stringify(name.slice(0, 64))}`)
  if (BAD_VALUE.test(value)) fail(`header ${name} contains control characters`)
}

/** Content-Length may repeat (as a list or as several fields) only with one value (RFC 9110 §8.6). */
export function mergeContentLength(prior: number, value: string): number {
  let result = prior
  for (const part of value.split(',')) {
    const v = part.trim()
    if (!DIGITS.test(v)) fail(`invalid Content-Length ${JSON.stringify(value.slice(0, 64))}`)
    const n = Number(v)
    if (result !== -1 && result !== n) fail('conflicting Content-Length values')
    result = n
  }
  return result
}

/** Whether and how a final response to `method` carries a body (RFC 9112 §6.3). */
export function framingOf(head: Pick<ResponseHead, 'status' | 'chunked' | 'contentLength'>, method: string): Framing {
  const s = head.status
  if (method === 'HEAD' || s < 200 || s === 204 || s === 304) return Framing.None
  if (head.chunked) return Framing.Chunked
  if (head.contentLength === 0) return Framing.None
  if (head.contentLength > 0) return Framing.Length
  return Framing.Close
}

// Decoder states.
const SIZE = 0
const EXT = 1
const SIZE_LF = 2
const DATA = 3
const DATA_CR = 4
const DATA_LF = 5
const TRAILER = 6
const TRAILER_LF = 7
const DONE = 8

/** Longest chunk-size line (size plus extensions) and trailer section accepted. */
const MAX_CHUNK_LINE = 4096
const MAX_TRAILERS = 64 * 1024

function hexValue(b: number): number {
  if (b >= 48 && b <= 57) return b - 48
  if (b >= 97 && b <= 102) return b - 87
  if (b >= 65 && b <= 70) return b - 55
  return -1
}

/** Trailer-line states of a strict decoder. */
const LINE_START = 0
const LINE_NAME = 1
const LINE_VALUE = 2

/**
 * Incremental decoder for a chunked body. `push` hands each data slice (a view into the input, not
 * a copy) to `onData` and returns how many bytes it consumed: all of them, or fewer once the
 * message ends (the rest belongs to whatever follows). Trailers are read and dropped.
 *
 * `strict` is for bytes passed on as they are (the engine's relay): the size lines and trailers then
 * reach another parser, so only forms every parser reads alike are let through: at most 8 hex digits
 * (leading zeros count), an extension only after `;`, trailer lines that are `token: value` without
 * controls. The decoder's own reading is the same either way.
 */
export class ChunkedDecoder {
  #state: number = SIZE
  #size = 0
  #digits = 0
  #lineBytes = 0
  #trailerBytes = 0
  #lineEmpty = true
  readonly #strict: boolean
  readonly #maxDigits: number
  /** Strict: a `;` started the extension. */
  #extension = false
  /** Strict: where in a trailer line the last byte was. */
  #line = LINE_START

  constructor(options: { strict?: boolean } = {}) {
    this.#strict = options.strict === true
    this.#maxDigits = this.#strict ? 8 : 13
  }

  get done(): boolean {
    return this.#state === DONE
  }

  push(buf: Uint8Array, start: number, onData: (chunk: Uint8Array) => void): number {
    let i = start
    const len = buf.length
    while (i < len) {
      switch (this.#state) {
        case SIZE: {
          const b = buf[i]!
          const h = hexValue(b)
          if (h !== -1) {
            if (++this.#digits > this.#maxDigits) fail('chunk size is too large')
            this.#size = this.#size * 16 + h
            i++
            break
          }
          if (this.#digits === 0) fail('missing chunk size')
          this.#lineBytes = this.#digits
          if (b === CR) {
            this.#state = SIZE_LF
            i++
          } else if (b === 59 || b === 32 || b === 9) {
            // `;` starts an extension; BWS before it is tolerated (RFC 9112 §7.1.1).
            this.#state = EXT
          } else fail('invalid character after chunk size')
          break
        }
        case EXT: {
          const b = buf[i]!
          if (this.#strict && !this.#extension) {
            if (b === 59) this.#extension = true
            else if (b !== 32 && b !== 9) fail('invalid character after chunk size')
          }
          if (b === CR) this.#state = SIZE_LF
          else if (b === LF || b === 0) fail('invalid character in chunk extension')
          if (++this.#lineBytes > MAX_CHUNK_LINE) fail('chunk extension is too long')
          i++
          break
        }
        case SIZE_LF:
          if (buf[i] !== LF) fail('chunk size line does not end in CRLF')
          i++
          this.#digits = 0
          this.#extension = false
          if (this.#size === 0) {
            this.#state = TRAILER
            this.#lineEmpty = true
          } else this.#state = DATA
          break
        case DATA: {
          const n = Math.min(this.#size, len - i)
          onData(buf.subarray(i, i + n))
          i += n
          this.#size -= n
          if (this.#size === 0) this.#state = DATA_CR
          break
        }
        case DATA_CR:
          if (buf[i] !== CR) fail('chunk data does not end in CRLF')
          this.#state = DATA_LF
          i++
          break
        case DATA_LF:
          if (buf[i] !== LF) fail('chunk data does not end in CRLF')
          this.#state = SIZE
          i++
          break
        case TRAILER: {
          const b = buf[i]!
          i++
          if (++this.#trailerBytes > MAX_TRAILERS) fail('the trailer section is too large')
          if (b === CR) {
            if (this.#line === LINE_NAME) fail('a trailer line without a colon')
            this.#line = LINE_START
            this.#state = TRAILER_LF
          } else if (b === LF || b === 0) fail('invalid character in the trailer section')
          else {
            this.#lineEmpty = false
            if (this.#strict) this.#checkTrailer(b)
          }
          break
        }
        case TRAILER_LF:
          if (buf[i] !== LF) fail('trailer line does not end in CRLF')
          i++
          if (this.#lineEmpty) {
            this.#state = DONE
            return i
          }
          this.#lineEmpty = true
          this.#state = TRAILER
          break
        case DONE:
          return i
      }
    }
    return i
  }

  /** One byte of a trailer line other than CR: a field name (token) up to the colon, then a value without controls. */
  #checkTrailer(b: number): void {
    if (this.#line === LINE_VALUE) {
      if ((b < 32 && b !== 9) || b === 127) fail('a control character in a trailer value')
    } else if (b === 58 && this.#line === LINE_NAME) this.#line = LINE_VALUE
    else if (TCHAR[b]) this.#line = LINE_NAME
    else fail('an invalid trailer field name')
  }
}
