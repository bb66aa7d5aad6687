import { BUFFER_LIMIT } from './actions/request-body-find-replace.ts'

/**
 * Reads a body up to `limit` bytes (BUFFER_LIMIT by default) for an action that must look at it (a
 * webhook signature, a JWT in a form field, the WAF) and gives back a body the receiver still gets
 * whole: the bytes read, then whatever was left unread. `complete` is false when the body is over
 * the limit; `bytes` then holds at least its first `limit` bytes.
 */
export async function takeBody(body: ReadableStream<Uint8Array> | null | undefined, limit = BUFFER_LIMIT): Promise<{ bytes: Buffer; complete: boolean; body: ReadableStream<Uint8Array> | null }> {
  if (!body) return { bytes: Buffer.alloc(0), complete: true, body: null }
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  let done = false
  while (size <= limit) {
    const next = await reader.read()
    if (next.done) {
      done = true
      break
    }
    chunks.push(next.value)
    size += next.value.byteLength
  }
  const again = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const chunk = chunks.shift()
      if (chunk) return controller.enqueue(chunk)
      if (done) return controller.close()
      const next = await reader.read()
      if (next.done) controller.close()
      else controller.enqueue(next.value)
    },
    cancel(reason) {
      return reader.cancel(reason)
    },
  })
  return { bytes: Buffer.concat(chunks), complete: done, body: again }
}
