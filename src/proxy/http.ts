import { CODES, ERROR_CODE_HEADER } from '../lib/errors.ts'
import type { HttpExchange } from '../policy/types.ts'
import { errorResponse } from './errors.ts'
import { stripHopHeaders } from './hop-headers.ts'

export interface ForwardOptions {
  /** Milliseconds to wait for the upstream's response head. */
  timeoutMs: number
}

function classify(err: unknown, timedOut: boolean, accept: string | null): Response {
  if (timedOut) return errorResponse(504, CODES.UPSTREAM_TIMEOUT, 'The upstream did not answer in time.', accept)
  const code = (err as { code?: string })?.code ?? ''
  if (/ECONNREFUSED|ConnectionRefused|ECONNRESET|ConnectionClosed|FailedToOpenSocket|EHOSTUNREACH|ENOTFOUND/i.test(code + String(err)))
    return errorResponse(502, CODES.UPSTREAM_REFUSED, 'The upstream refused or dropped the connection.', accept)
  return errorResponse(502, CODES.UPSTREAM_INVALID_RESPONSE, 'The upstream returned an invalid or incomplete HTTP response.', accept)
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
    return classify(err, timedOut, ex.headers.get('accept'))
  } finally {
    clearTimeout(timer)
  }
  const headers = new Headers(upstream.headers)
  stripHopHeaders(headers)
  headers.delete(ERROR_CODE_HEADER)
  return new Response(upstream.body, { status: upstream.status, statusText: upstream.statusText, headers })
}
