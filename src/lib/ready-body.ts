/**
 * The bytes of a `Response` body that was whole in memory when the Response was made (the upstream
 * client's small answers). A Response hides them behind a ReadableStream, and reading that costs a
 * reader, several promises and a turn of the event loop per response (measured: docs/benchmarks.md,
 * "HTTP/1.1 engine profile"); the HTTP/1 engine writes these bytes with the head instead. A Response
 * made from another one (on_http_response, compress-response) has no entry and is read as a stream.
 */

const READY = new WeakMap<Response, Uint8Array>()

/** `new Response(body, init)`, remembered as having exactly these bytes. */
export function readyResponse(body: Uint8Array, init: ResponseInit): Response {
  const res = new Response(body, init)
  READY.set(res, body)
  return res
}

/** The bytes `res` was made with, while nobody has read its body; undefined for a streamed body. */
export function readyBody(res: Response): Uint8Array | undefined {
  const body = READY.get(res)
  return body && !res.bodyUsed ? body : undefined
}
