import { CODES, ERROR_CODE_HEADER, WarrenError } from '../lib/errors.ts'
import type { HttpExchange } from '../policy/types.ts'
import { errorResponse } from './errors.ts'
import { h1Request, originOf, sharedPool, type H1Origin } from './h1/index.ts'
import { dropConnectionListed, stripHopHeaders } from './hop-headers.ts'

export interface ForwardOptions {
  /** Milliseconds to wait for the upstream's response head. */
  timeoutMs: number
  /**
   * The origin is an agent: its own 502 (upstream unreachable, ERR_WARREN_8012) keeps its
   * `Warren-Error-Code`. Only that pair passes, so an upstream behind the agent can claim nothing else.
   */
  agent?: boolean
}

/** The edge's page for a failed forward; `upstream` (an origin URL) is named, as the agent's page does. */
function classify(err: unknown, timedOut: boolean, accept: string | null, upstream?: string): Response {
  const who = upstream ? `The upstream ${upstream}` : 'The upstream'
  if (timedOut) return errorResponse(504, CODES.UPSTREAM_TIMEOUT, `${who} did not answer in time.`, accept, upstream)
  const code = (err as { code?: string })?.code ?? ''
  if (/ECONNREFUSED|ConnectionRefused|ECONNRESET|ConnectionClosed|FailedToOpenSocket|EHOSTUNREACH|ENOTFOUND/i.test(code + String(err)))
    return errorResponse(502, CODES.UPSTREAM_REFUSED, `${who} refused or dropped the connection.`, accept, upstream)
  return errorResponse(502, CODES.UPSTREAM_INVALID_RESPONSE, `${who} returned an invalid or incomplete HTTP response.`, accept, upstream)
}

/** Uploads above this size (or without a Content-Length) go through fetch. */
const LARGE_UPLOAD = 1024 * 1024

function largeUpload(ex: HttpExchange, body: ReadableStream<Uint8Array> | null): boolean {
  if (!body) return false
  const length = Number(ex.headers.get('content-length') ?? NaN)
  return !(length <= LARGE_UPLOAD)
}

/**
 * Sends the exchange to an HTTP(S) origin and streams the answer back. Bodies stream both ways
 * (nothing is buffered), encodings pass through untouched, and the response loses its hop-by-hop
 * headers and any `Warren-Error-Code` an upstream tried to set.
 */
export async function forwardHttp(
  ex: HttpExchange,
  origin: URL,
  body: ReadableStream<Uint8Array> | null,
  options: ForwardOptions,
): Promise<Response> {
  // Plain HTTP goes through warren's own HTTP/1.1 client (pooled keep-alive, ~20% less CPU per
  // request than fetch), except large or unsized uploads: fetch streams those natively, which keeps
  // the edge's memory flat where the JS client churns through buffers (a 1 GB upload: +15 MB vs +50 MB).
  if (origin.protocol === 'http:' && !largeUpload(ex, body)) {
    try {
      return await sendH1(ex, originOf(origin), body, options)
    } catch (err) {
      return h1FailureResponse(err, ex.headers.get('accept'), origin.origin)
    }
  }
  stripHopHeaders(ex.headers)
  const target = origin.origin + ex.url.pathname + ex.url.search
  const abort = new AbortController()
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    abort.abort()
  }, options.timeoutMs)
  let upstream: Response
  try {
    upstream = await fetch(target, {
      method: ex.method,
      headers: ex.headers,
      body,
      redirect: 'manual',
      decompress: false,
      signal: abort.signal,
      // Streamed request bodies need half-duplex fetch.
      duplex: 'half',
    })
  } catch (err) {
    return classify(err, timedOut, ex.headers.get('accept'), origin.origin)
  } finally {
    clearTimeout(timer)
  }
  const headers = new Headers(upstream.headers)
  dropConnectionListed(headers)
  stripHopHeaders(headers)
  headers.delete(ERROR_CODE_HEADER)
  return new Response(upstream.body, { status: upstream.status, statusText: upstream.statusText, headers })
}

/**
 * Sends the exchange over warren's HTTP/1.1 client to `origin` (a TCP origin, or an agent tunnel
 * whose origin dials proxy streams) and streams the answer back. Rejects with the HTTP client's
 * error (`UpstreamRefused` tells how far the request got), so a caller may try elsewhere before
 * answering with `h1FailureResponse`.
 */
export async function sendH1(
  ex: HttpExchange,
  origin: H1Origin,
  body: ReadableStream<Uint8Array> | null,
  options: ForwardOptions,
): Promise<Response> {
  stripHopHeaders(ex.headers)
  const res = await h1Request(sharedPool(), {
    origin,
    method: ex.method,
    target: ex.url.pathname + ex.url.search,
    headers: ex.headers,
    body,
    timeoutMs: options.timeoutMs,
  })
  // The client already left out hop-by-hop fields (and those Connection names).
  const agentMade = options.agent === true && res.status === 502 && res.headers.get(ERROR_CODE_HEADER) === CODES.UPSTREAM_REFUSED
  if (!agentMade) res.headers.delete(ERROR_CODE_HEADER)
  return res
}

/** The edge's error page for a failed `sendH1`. */
export function h1FailureResponse(err: unknown, accept: string | null, upstream?: string): Response {
  if (err instanceof WarrenError) {
    // The client's messages say "The upstream …"; the page names which one, as classify() does.
    const message = upstream ? err.message.replace(/^The upstream /, `The upstream ${upstream} `) : err.message
    return errorResponse(err.status ?? 502, err.code, message, accept, upstream)
  }
  return classify(err, false, accept, upstream)
}
