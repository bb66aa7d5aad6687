import { CODES, WarrenError } from '../lib/errors.ts'
import { carryLines } from '../lib/header-lines.ts'
import { log } from '../lib/log.ts'
import { createEventStreamParser, serializeMessage, type EventStreamItem, type EventStreamMessage } from '../lib/sse.ts'
import { markStreamed } from '../lib/streamed-body.ts'
import { runPhase, type CompiledRule, type RunOptions } from '../policy/engine.ts'
import type { HttpExchange } from '../policy/types.ts'

export interface EventStreamOptions {
  /** The endpoint's on_event_stream_message rules. */
  rules: readonly CompiledRule[]
  /**
   * What `vars` holds for every message: on_http_response's (the messages are part of that answer,
   * and no action of this phase can set any), or nothing when that phase did not run.
   */
  vars: Record<string, unknown>
  trace?: RunOptions['trace']
}

/** `Content-Type: text/event-stream`, with or without parameters. */
export function isEventStream(headers: Headers): boolean {
  return /^\s*text\/event-stream\s*(;|$)/i.test(headers.get('content-type') ?? '')
}

/**
 * The answer with on_event_stream_message run over each message of its body while it streams:
 * a message goes out as soon as its blank line arrived and its rules ran, so nothing beyond the
 * current message is held. Other answers (not an event stream, no body, HEAD, a compressed body
 * the edge cannot read) are returned as they are. A message the phase cannot handle (too large, a
 * failing `${…}`) cuts the stream: the head is out, so that is the only way left to refuse it.
 */
export function eventStreamResponse(response: Response, ex: HttpExchange, options: EventStreamOptions): Response {
  if (!options.rules.length || !response.body || ex.method === 'HEAD' || !isEventStream(response.headers)) return response
  const encoding = response.headers.get('content-encoding')
  if (encoding && encoding.trim().toLowerCase() !== 'identity') {
    log.debug('on_event_stream_message skipped', { endpoint: ex.endpoint.url, reason: `the body is ${encoding}-encoded` })
    return response
  }
  ex.response ??= { status: response.status, headers: response.headers }
  const body = markStreamed(response.body.pipeThrough(messageTransform(ex, options)))
  const out = new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers })
  carryLines(response.headers, out.headers)
  // Rewritten messages change the length.
  out.headers.delete('content-length')
  return out
}

function messageTransform(ex: HttpExchange, options: EventStreamOptions): TransformStream<Uint8Array, Uint8Array> {
  const parser = createEventStreamParser()
  // UTF-8 as EventSource decodes it: a leading BOM is dropped, invalid bytes become U+FFFD.
  const decoder = new TextDecoder()
  const encoder = new TextEncoder()
  const runOptions = options.trace ? { trace: options.trace } : {}

  async function rewrite(message: EventStreamMessage): Promise<string> {
    // Comments alone (keep-alives) are no event: there is nothing for the rules to look at.
    if (message.lines.every((l) => l.name === null)) return message.raw
    ex.message = message
    ex.vars = options.vars
    const outcome = await runPhase(options.rules, ex, runOptions)
    delete ex.message
    if (outcome.kind !== 'continue') throw new WarrenError(CODES.EVENT_STREAM_POLICY_FAILED, 'on_event_stream_message failed for a message')
    return serializeMessage(message)
  }

  async function relay(items: EventStreamItem[], controller: TransformStreamDefaultController<Uint8Array>): Promise<void> {
    let out = ''
    for (const item of items) out += typeof item === 'string' ? item : await rewrite(item)
    if (out) controller.enqueue(encoder.encode(out))
  }

  function cut(err: unknown): never {
    const code = err instanceof WarrenError ? err.code : CODES.EVENT_STREAM_POLICY_FAILED
    log.warn('event stream cut', { endpoint: ex.endpoint.url, code, error: err instanceof Error ? err.message : String(err) })
    throw err
  }

  return new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      try {
        await relay(parser.push(decoder.decode(chunk, { stream: true })), controller)
      } catch (err) {
        cut(err)
      }
    },
    async flush(controller) {
      try {
        const items = parser.push(decoder.decode())
        // The stream ended inside a message: it still runs through the phase (a client discards it,
        // but what it carried must not pass unrewritten), and stays unterminated.
        const last = parser.end()
        await relay(last ? [...items, last] : items, controller)
      } catch (err) {
        cut(err)
      }
    },
  })
}
