import { eventually } from './process.ts'

/** One message of `/events/stream`: its `event:` name and parsed `data:`. */
export interface StreamMessage {
  event: string
  data: any
}

export interface EventStream {
  /** Every message so far (comments left out), in order. */
  messages: StreamMessage[]
  stop(): void
}

/**
 * Opens `/events/stream` on the API at `apiPort` and collects its messages until `stop()`; resolves
 * once the `ready` message arrived.
 */
export async function openEventStream(apiPort: number, key: string, filter?: string): Promise<EventStream> {
  const abort = new AbortController()
  const url = `http://127.0.0.1:${apiPort}/events/stream${filter === undefined ? '' : `?filter=${encodeURIComponent(filter)}`}`
  const res = await fetch(url, { headers: { authorization: `Bearer ${key}` }, signal: abort.signal })
  if (res.status !== 200) throw new Error(`stream answered ${res.status}: ${await res.text()}`)
  const messages: StreamMessage[] = []
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
  void (async () => {
    let buffer = ''
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return
        buffer += value
        let end
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          if (block.startsWith(':')) continue
          const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message'
          const data = /^data: (.*)$/m.exec(block)?.[1]
          messages.push({ event, data: data ? JSON.parse(data) : undefined })
        }
      }
    } catch {}
  })()
  if (!(await eventually(async () => messages.some((m) => m.event === 'ready'), 3000))) throw new Error('no ready message on the event stream')
  return { messages, stop: () => abort.abort() }
}
