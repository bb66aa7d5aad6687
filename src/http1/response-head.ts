import { STATUS_CODES } from 'node:http'
import { ERROR_CODE_HEADER } from '../lib/errors.ts'
import { H1ParseError, isChunked, mergeContentLength } from '../proxy/h1/parse.ts'
import { HOP_BY_HOP } from '../proxy/hop-headers.ts'
import { httpDate } from './http-date.ts'
import { TCHAR, VCHAR } from './parse-head.ts'

/**
 * An upstream's response head as the byte relay reads it: one pass over the bytes for what relaying
 * needs (status, framing, keep-alive, which lines the client must not get), as strict as
 * `parseResponseHead` (src/proxy/h1/parse.ts) where a lenient reading could split the stream two
 * ways. The lines the client gets go out as the upstream wrote them (case, order, repeats), in the
 * common case as the very bytes read; strings are made only for a field someone asks for (`get`).
 * The rules on what is left out are the pipeline's: hop-by-hop fields, the names `Connection` lists,
 * framing (the relay writes its own) and an upstream's `Warren-Error-Code`.
 */

const LF = 10
const CR = 13
const SP = 32
const HTAB = 9
const COLON = 58

/** What the relay does with a field, by lower-case name; any other name passes. */
const HOP = 1
const LENGTH = 2
const DATE = 3
const CODE = 4
const TRANSFER_ENCODING = 5
const CONNECTION = 6
/** Content-Length lines, cut when a repeated or listed length is written again as one line. */
const CONTENT_LENGTH: ReadonlySet<string> = new Set(['content-length'])
const KINDS = new Map<string, number>([
  ...HOP_BY_HOP.map((name) => [name, HOP] as [string, number]),
  ['content-length', LENGTH],
  ['date', DATE],
  [ERROR_CODE_HEADER, CODE],
  ['transfer-encoding', TRANSFER_ENCODING],
  ['connection', CONNECTION],
])
/** The names above by length, as bytes: a field's name is compared where it lies, no string made. */
const BY_LENGTH: [name: Uint8Array, kind: number][][] = []
for (const [name, kind] of KINDS) (BY_LENGTH[name.length] ??= []).push([Buffer.from(name, 'latin1'), kind])

/** The kind of the field named by `buf[start…end)` (case-insensitive), or 0. */
function kindOf(buf: Uint8Array, start: number, end: number): number {
  const candidates = BY_LENGTH[end - start]
  if (!candidates) return 0
  next: for (const [name, kind] of candidates) {
    // Names are tokens: OR 0x20 folds A-Z onto a-z and maps no other token byte onto a letter or '-'.
    for (let i = 0; i < name.length; i++) if ((buf[start + i]! | 0x20) !== name[i]) continue next
    return kind
  }
  return 0
}
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/
/** Entries per line in `#lines`: start, colon, end (before CR LF), next line's start, cut (1) or kept (0). */
const STRIDE = 5

function fail(message: string): never {
  throw new H1ParseError(message)
}

/**
 * Scans the complete head in `buf[0…end)`. `keepCode`: an upstream 502 may keep its
 * `Warren-Error-Code` line when it holds exactly this code (an agent's "upstream unreachable").
 */
export function scanResponseHead(buf: Uint8Array, end: number, keepCode?: string): UpstreamHead {
  return new UpstreamHead(buf, end, keepCode)
}

export class UpstreamHead {
  readonly status: number
  /** Minor version of HTTP/1.x. */
  readonly minor: number
  /** False when the upstream asked to close, or spoke HTTP/1.0 without `keep-alive`. */
  readonly keepAlive: boolean
  /** The declared length, or -1 when there is no Content-Length. */
  readonly contentLength: number
  readonly chunked: boolean
  readonly #buf: Uint8Array
  readonly #end: number
  readonly #lines: number[] = []
  readonly #reasonStart: number
  readonly #reasonEnd: number
  /** Start of the first field line, and of the blank line that ends the head. */
  readonly #fieldsAt: number
  #blankAt = 0
  /** The status line is written anew (HTTP/1.0, no reason phrase, a bare LF). */
  readonly #rewrite: boolean
  /** Some field line ends in a bare LF: every kept line is written with CR LF. */
  #bareLf = false
  #cuts = 0
  #dated = false
  /** The one Content-Length line passes as it came (else the relay writes the merged value). */
  #lengthInPlace = false

  constructor(buf: Uint8Array, end: number, keepCode: string | undefined) {
    this.#buf = buf
    this.#end = end
    // Status line: HTTP/1.x SP 3DIGIT [SP reason] (RFC 9112 §4).
    let eol = buf.indexOf(LF)
    if (eol <= 0 || eol >= end) fail('the response head is empty')
    const lineEnd = buf[eol - 1] === CR ? eol - 1 : eol
    const d0 = buf[9]!
    const d1 = buf[10]!
    const d2 = buf[11]!
    const minor = buf[7]! - 48
    if (
      lineEnd < 12 ||
      buf[0] !== 72 || buf[1] !== 84 || buf[2] !== 84 || buf[3] !== 80 || buf[4] !== 47 || buf[5] !== 49 || buf[6] !== 46 ||
      (minor !== 0 && minor !== 1) || buf[8] !== SP ||
      d0 < 49 || d0 > 57 || d1 < 48 || d1 > 57 || d2 < 48 || d2 > 57 ||
      (lineEnd > 12 && buf[12] !== SP)
    )
      fail(`invalid status line ${JSON.stringify(Buffer.prototype.latin1Slice.call(buf, 0, Math.min(lineEnd, 64)))}`)
    const status = (d0 - 48) * 100 + (d1 - 48) * 10 + (d2 - 48)
    if (status > 599) fail(`invalid status code ${status}`)
    this.status = status
    this.minor = minor
    this.#reasonStart = Math.min(13, lineEnd)
    this.#reasonEnd = lineEnd
    for (let i = this.#reasonStart; i < lineEnd; i++) if (!VCHAR[buf[i]!]) fail('the reason phrase contains control characters')
    this.#rewrite = minor === 0 || lineEnd <= 13 || lineEnd === eol

    let contentLength = -1
    let lengthLines = 0
    let lengthPlain = true
    let transferEncoding: string | null = null
    let connection = ''
    const lines = this.#lines
    let pos = eol + 1
    this.#fieldsAt = pos
    for (;;) {
      eol = buf.indexOf(LF, pos)
      if (eol === -1 || eol >= end) fail('the response head does not end with a blank line')
      const crlf = eol > pos && buf[eol - 1] === CR
      const lineEnd = crlf ? eol - 1 : eol
      if (lineEnd === pos) {
        this.#blankAt = pos
        if (!crlf) this.#bareLf = true
        pos = eol + 1
        break
      }
      if (!crlf) this.#bareLf = true
      const first = buf[pos]!
      if (first === SP || first === HTAB) fail('obsolete line folding in the response head')
      let colon = pos
      while (colon < lineEnd && TCHAR[buf[colon]!]) colon++
      if (colon === pos || colon >= lineEnd || buf[colon] !== COLON) {
        const at = buf.indexOf(COLON, pos)
        if (at === -1 || at >= lineEnd || at === pos)
          fail(`malformed header line ${JSON.stringify(Buffer.prototype.latin1Slice.call(buf, pos, Math.min(lineEnd, pos + 64)))}`)
        fail(`invalid header name ${JSON.stringify(Buffer.prototype.latin1Slice.call(buf, pos, Math.min(at, pos + 64)))}`)
      }
      for (let i = colon + 1; i < lineEnd; i++) if (!VCHAR[buf[i]!]) fail(`header ${latin1(buf, pos, colon)} contains control characters`)
      let cut = 0
      const kind = kindOf(buf, pos, colon)
      if (kind !== 0) {
        switch (kind) {
          case LENGTH: {
            const n = digitsValue(buf, colon + 1, lineEnd)
            if (n === -1 || (contentLength !== -1 && contentLength !== n)) {
              // Lists, repeats that differ and anything malformed: the parser's rules and messages.
              const value = this.#value(colon, lineEnd)
              contentLength = mergeContentLength(contentLength, value)
              if (value.includes(',')) lengthPlain = false
            } else contentLength = n
            lengthLines++
            break
          }
          case DATE:
            this.#dated = true
            break
          case CODE:
            if (!(keepCode !== undefined && status === 502 && this.#value(colon, lineEnd) === keepCode)) cut = 1
            break
          case TRANSFER_ENCODING: {
            const value = this.#value(colon, lineEnd)
            transferEncoding = transferEncoding === null ? value : `${transferEncoding}, ${value}`
            cut = 1
            break
          }
          case CONNECTION: {
            const value = this.#value(colon, lineEnd)
            connection = connection ? `${connection}, ${value}` : value
            cut = 1
            break
          }
          case HOP:
            cut = 1
        }
      }
      this.#cuts += cut
      lines.push(pos, colon, lineEnd, eol + 1, cut)
      pos = eol + 1
    }
    if (pos !== end) fail('bytes after the blank line that ends the head')

    const chunked = isChunked(transferEncoding, contentLength, minor)
    // One plain line (and a status that may carry it) passes as it came; repeats and lists become one line.
    this.#lengthInPlace = lengthLines === 1 && lengthPlain && status !== 204
    if (lengthLines > 0 && !this.#lengthInPlace) this.#cutNamed(CONTENT_LENGTH)
    let close = false
    let keepAliveToken = false
    let listed: Set<string> | undefined
    if (connection) {
      for (const part of connection.split(',')) {
        const token = part.trim().toLowerCase()
        if (token === 'close') close = true
        else if (token === 'keep-alive') keepAliveToken = true
        // Content-Length is the relay's to write (framing); the others are the upstream's to withdraw.
        else if (TOKEN.test(token) && token !== 'content-length') (listed ??= new Set()).add(token)
      }
    }
    if (listed) this.#cutNamed(listed)
    this.keepAlive = !close && (minor === 1 || keepAliveToken)
    this.contentLength = contentLength
    this.chunked = chunked
  }

  /** A field value with its surrounding whitespace trimmed. */
  #value(colon: number, lineEnd: number): string {
    const buf = this.#buf
    let a = colon + 1
    let b = lineEnd
    while (a < b && (buf[a] === SP || buf[a] === HTAB)) a++
    while (b > a && (buf[b - 1] === SP || buf[b - 1] === HTAB)) b--
    return latin1(buf, a, b)
  }

  /** Marks the kept lines with one of these (lower-case) names as cut. */
  #cutNamed(names: ReadonlySet<string>): void {
    const lines = this.#lines
    for (let k = 0; k < lines.length; k += STRIDE) {
      if (lines[k + 4]) continue
      const lower = latin1(this.#buf, lines[k]!, lines[k + 1]!).toLowerCase()
      if (!names.has(lower)) continue
      lines[k + 4] = 1
      if (lower === 'date') this.#dated = false
      this.#cuts++
    }
  }

  /** True when the client gets the head exactly as read (given no `fields` to add). */
  get asRead(): boolean {
    return !this.#rewrite && !this.#cuts && !this.#bareLf && this.#dated && (this.#lengthInPlace || this.contentLength === -1 || this.status === 204)
  }

  /**
   * The head the client gets: the upstream's status line and kept lines, a Date when the upstream
   * sent none, the merged Content-Length when its lines were not passed as they came, then `fields`
   * (the relay's framing and connection lines). Without anything to change, the bytes read.
   */
  bytes(fields: string): Uint8Array {
    const buf = this.#buf
    if (fields === '' && this.asRead) return buf.subarray(0, this.#end)
    const addLength = !this.#lengthInPlace && this.contentLength !== -1 && this.status !== 204
    let tail = ''
    if (!this.#dated) tail += `date: ${httpDate()}\r\n`
    if (addLength) tail += `content-length: ${this.contentLength}\r\n`
    tail += `${fields}\r\n`
    const status = this.#rewrite ? `HTTP/1.1 ${this.status} ${latin1(buf, this.#reasonStart, this.#reasonEnd) || STATUS_CODES[this.status] || ''}\r\n` : ''
    const statusBytes = this.#rewrite ? status.length : this.#fieldsAt
    const lines = this.#lines
    if (!this.#cuts && !this.#bareLf) {
      const fieldBytes = this.#blankAt - this.#fieldsAt
      const out = Buffer.allocUnsafe(statusBytes + fieldBytes + tail.length)
      if (this.#rewrite) out.write(status, 0, 'latin1')
      else out.set(buf.subarray(0, statusBytes))
      out.set(buf.subarray(this.#fieldsAt, this.#blankAt), statusBytes)
      out.write(tail, statusBytes + fieldBytes, 'latin1')
      return out
    }
    let size = statusBytes + tail.length
    for (let k = 0; k < lines.length; k += STRIDE) if (!lines[k + 4]) size += lines[k + 2]! - lines[k]! + 2
    const out = Buffer.allocUnsafe(size)
    let at = statusBytes
    if (this.#rewrite) out.write(status, 0, 'latin1')
    else out.set(buf.subarray(0, statusBytes))
    for (let k = 0; k < lines.length; k += STRIDE) {
      if (lines[k + 4]) continue
      out.set(buf.subarray(lines[k]!, lines[k + 2]!), at)
      at += lines[k + 2]! - lines[k]!
      out[at++] = CR
      out[at++] = LF
    }
    out.write(tail, at, 'latin1')
    return out
  }

  /**
   * A field of the head the client gets, as `Headers.get` would answer (repeats joined with `, `);
   * Content-Length is the merged value. Built on each call: events and logs ask for one or two.
   */
  get(name: string): string | null {
    const want = name.toLowerCase()
    if (want === 'content-length') return this.contentLength !== -1 && this.status !== 204 ? String(this.contentLength) : null
    const lines = this.#lines
    let out: string | null = null
    for (let k = 0; k < lines.length; k += STRIDE) {
      if (lines[k + 4] || lines[k + 1]! - lines[k]! !== want.length) continue
      if (latin1(this.#buf, lines[k]!, lines[k + 1]!).toLowerCase() !== want) continue
      const value = this.#value(lines[k + 1]!, lines[k + 2]!)
      out = out === null ? value : `${out}, ${value}`
    }
    return out
  }
}

/** A field value of 1–15 digits with optional whitespace around them, or -1 for anything else. */
function digitsValue(buf: Uint8Array, start: number, end: number): number {
  while (start < end && (buf[start] === SP || buf[start] === HTAB)) start++
  while (end > start && (buf[end - 1] === SP || buf[end - 1] === HTAB)) end--
  if (end === start || end - start > 15) return -1
  let n = 0
  for (let i = start; i < end; i++) {
    const d = buf[i]! - 48
    if (d < 0 || d > 9) return -1
    n = n * 10 + d
  }
  return n
}

function latin1(buf: Uint8Array, start: number, end: number): string {
  return Buffer.prototype.latin1Slice.call(buf, start, end)
}
