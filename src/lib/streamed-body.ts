/**
 * Bodies the edge re-encodes as they stream (compress-response). The HTTP/1 engine frames such a
 * body chunked even when all its bytes are there by the time the head goes out, so the client sees
 * the same framing however fast the compressor was: ngrok sends compressed answers without a
 * Content-Length. Keyed by the stream, which `new Response(stream)` keeps as its `body`.
 */
const STREAMED = new WeakSet<ReadableStream<Uint8Array>>()

/** Marks `body` as produced while it streams; returns it. */
export function markStreamed(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  STREAMED.add(body)
  return body
}

/** True for a body marked by markStreamed. */
export function isStreamed(body: ReadableStream<Uint8Array> | null): boolean {
  return body !== null && STREAMED.has(body)
}
