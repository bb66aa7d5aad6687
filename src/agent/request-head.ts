import { HOP_SET as HOP } from '../proxy/hop-headers.ts'

/**
 * HTTP/1.1 request heads as the edge writes them on a proxy stream (RFC 9112), for upstreams the
 * agent does not simply relay bytes to (HTTP/2). Strict where leniency lets a request be read two
 * ways: obs-fold, whitespace before the colon, Transfer-Encoding with Content-Length, disagreeing
 * Content-Length values and codings other than `chunked` are refused.
 */
export class RequestHeadError extends Error {
  override name = 'RequestHeadError'
}

export interface RequestHead {
  method: string
  /** The request target as sent: origin-form (`/path?q`), or absolute-form (`http://host/path`). */
  target: string
  /** Minor version of HTTP/1.x. */
  minor: number
  /** End-to-end fields in order, names lower-cased; hop-by-hop ones (and those `Connection` names) left out. */
  headers: [string, string][]
  /** The declared body length (-1: none declared). */
  contentLength: number
  chunked: boolean
  /** The client will close after this exchange (`Connection: close`, or HTTP/1.0 without keep-alive). */
  close: boolean
  /** `TE: trailers`: the client accepts trailer fields in a chunked response. */
  trailers: boolean
  /** `Upgrade` was asked for (a websocket). */
  upgrade: boolean
}

/** Largest request head accepted. */
export const MAX_REQUEST_HEAD = 64 * 1024

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/1\.([01])$/

function fail(message: string): never {
  throw new RequestHeadError(message)
}

/**
 * Parses a complete request head (latin1 text ending in the blank line).
 *
 * @example parseRequestHead('GET / HTTP/1.1\r\nhost: a\r\n\r\n').headers // [['host', 'a']]
 */
export function parseRequestHead(text: string): RequestHead {
  const lines = text.split('\n')
  const requestLine = lines[0]!.replace(/\r$/, '')
  const m = REQUEST_LINE.exec(requestLine)
  if (!m) fail(`invalid request line ${JSON.stringify(requestLine.slice(0, 64))}`)
  const headers: [string, string][] = []
  let contentLength = -1
  let transferEncoding: string | undefined
  let connection = ''
  let te = ''
  let upgrade = false
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '')
    if (line === '') break
    if (line[0] === ' ' || line[0] === '\t') fail('obsolete line folding in the request head')
    const colon = line.indexOf(':')
    if (colon <= 0) fail(`malformed header line ${JSON.stringify(line.slice(0, 64))}`)
    const name = line.slice(0, colon)
    const value = line.slice(colon + 1).trim()
    if (!TOKEN.test(name)) fail(`invalid header name ${JSON.stringify(name.slice(0, 64))}`)
    if (BAD_VALUE.test(value)) fail(`header ${name} contains control characters`)
    const lower = name.toLowerCase()
    if (lower === 'content-length') {
      for (const part of value.split(',')) {
        if (!/^\d{1,15}$/.test(part.trim())) fail(`invalid Content-Length ${JSON.stringify(value.slice(0, 64))}`)
        const n = Number(part.trim())
        if (contentLength !== -1 && contentLength !== n) fail('conflicting Content-Length values')
        contentLength = n
      }
      continue
    }
    if (HOP.has(lower)) {
      if (lower === 'transfer-encoding') transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`
      else if (lower === 'connection') connection = connection ? `${connection}, ${value}` : value
      else if (lower === 'te') te = te ? `${te}, ${value}` : value
      else if (lower === 'upgrade') upgrade = true
      continue
    }
    headers.push([lower, value])
  }
  let chunked = false
  if (transferEncoding !== undefined) {
    if (contentLength !== -1) fail('the request has both Transfer-Encoding and Content-Length')
    if (transferEncoding.trim().toLowerCase() !== 'chunked') fail(`unsupported Transfer-Encoding ${JSON.stringify(transferEncoding.slice(0, 64))}`)
    chunked = true
  }
  const minor = Number(m[3])
  const tokens = connection.split(',').map((t) => t.trim().toLowerCase()).filter(Boolean)
  const named = new Set(tokens.filter((t) => t !== 'close' && t !== 'keep-alive'))
  const close = tokens.includes('close') || (minor === 0 && !tokens.includes('keep-alive'))
  return {
    method: m[1]!,
    target: m[2]!,
    minor,
    headers: named.size ? headers.filter(([n]) => !named.has(n)) : headers,
    contentLength,
    chunked,
    close,
    trailers: te.split(',').some((t) => t.trim().toLowerCase().split(';')[0] === 'trailers'),
    upgrade,
  }
}
