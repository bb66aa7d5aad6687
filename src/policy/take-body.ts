import { BUFFER_LIMIT } from './actions/request-body-find-replace.ts'

/**
 * Reads up to BUFFER_LIMIT bytes of a request body for an action that must look at it (a webhook
 * signature, a JWT in a form field) and gives back a body the upstream still gets whole: the bytes
 * read, then whatever was left unread. `bytes` is undefined when the body is over the limit (it
 * cannot be checked, but when the action lets it through it must still arrive intact).
 */
export async function takeBody(body: ReadableStream<Uint8Array> | null | undefined): Promise<{ bytes: Buffer | undefined; body: ReadableStream<Uint8Array> | null }> {
  if (!body) return { bytes: Buffer.alloc(0), body: null }
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  let done = false
  while (size <= BUFFER_LIMIT) {
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
  return { bytes: done ? Buffer.concat(chunks) : undefined, body: again }
}
