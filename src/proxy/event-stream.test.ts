import { describe, expect, test } from 'bun:test'
import { compile, exchange } from '../../test/helpers/actions.ts'
import { isStreamed } from '../lib/streamed-body.ts'
import type { TraceEvent } from '../policy/engine.ts'
import { eventStreamResponse, isEventStream } from './event-stream.ts'

const REDACT = {
  on_event_stream_message: [
    {
      actions: [
        {
          type: 'sse-find-replace',
          config: {
            replacements: [
              { field: 'data', from: '\\d{3}-\\d{2}-\\d{4}', to: '[SSN REDACTED]' },
              { field: 'data', from: '[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\\.[a-zA-Z]{2,}', to: '[EMAIL REDACTED]' },
            ],
          },
        },
      ],
    },
  ],
}

/** A body the test writes to chunk by chunk, as a streaming upstream would. */
function upstreamBody() {
  let controller!: ReadableStreamDefaultController<Uint8Array>
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) })
  const encoder = new TextEncoder()
  return { body, send: (text: string) => controller.enqueue(encoder.encode(text)), close: () => controller.close() }
}

function sse(body: ReadableStream<Uint8Array> | string, headers: Record<string, string> = {}) {
  return new Response(body, { headers: { 'content-type': 'text/event-stream; charset=utf-8', ...headers } })
}

function streamed(policy: unknown, response: Response, init: Parameters<typeof exchange>[1] = {}, trace?: (e: TraceEvent) => void) {
  const rules = compile(policy).on_event_stream_message
  return eventStreamResponse(response, exchange('http://a.test/', init), { rules, vars: {}, ...(trace ? { trace } : {}) })
}

describe('isEventStream()', () => {
  test.each([
    ['text/event-stream', true],
    ['Text/Event-Stream; charset=utf-8', true],
    ['text/event-streamx', false],
    ['application/json', false],
    ['', false],
  ])('%p → %p', (type, want) => {
    expect(isEventStream(new Headers(type ? { 'content-type': type } : {}))).toBe(want)
  })
})

describe('eventStreamResponse()', () => {
  test('each message goes out rewritten as soon as it is complete, while the stream stays open', async () => {
    const up = upstreamBody()
    const res = streamed(REDACT, sse(up.body, { 'content-length': '999' }))
    expect(res.headers.get('content-length')).toBeNull()
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    expect(isStreamed(res.body)).toBe(true)
    const reader = res.body!.getReader()
    const decoder = new TextDecoder()
    up.send('data: ssn 123-45-')
    up.send('6789\n\n')
    expect(decoder.decode((await reader.read()).value)).toBe('data: ssn [SSN REDACTED]\n\n')
    up.send(': keep-alive\n\nevent: done\ndata: ann@example.com\n\n')
    expect(decoder.decode((await reader.read()).value)).toBe(': keep-alive\n\nevent: done\ndata: [EMAIL REDACTED]\n\n')
    up.close()
    expect((await reader.read()).done).toBe(true)
  })

  test('comment-only messages pass without running the rules', async () => {
    const events: TraceEvent[] = []
    const res = streamed(REDACT, sse(': ping\n\ndata: 1\n\n'), {}, (e) => events.push(e))
    expect(await res.text()).toBe(': ping\n\ndata: 1\n\n')
    expect(events.filter((e) => e.type === 'rule')).toHaveLength(1)
  })

  test('rule expressions read req and res for each message', async () => {
    const policy = {
      on_event_stream_message: [
        { expressions: ["req.url.path == '/chat' && res.status_code == 200"], actions: [{ type: 'sse-find-replace', config: { replacements: [{ from: 'a', to: 'b' }] } }] },
      ],
    }
    expect(await streamed(policy, sse('data: a\n\n'), { url: new URL('http://a.test/chat') }).text()).toBe('data: b\n\n')
    expect(await streamed(policy, sse('data: a\n\n'), { url: new URL('http://a.test/other') }).text()).toBe('data: a\n\n')
  })

  test.each([
    { desc: 'not an event stream', response: () => new Response('data: 123-45-6789\n\n', { headers: { 'content-type': 'text/plain' } }), init: {} },
    { desc: 'a compressed event stream', response: () => sse('x', { 'content-encoding': 'gzip' }), init: {} },
    { desc: 'HEAD', response: () => sse('data: 123-45-6789\n\n'), init: { method: 'HEAD' } },
  ])('$desc is returned as it is', ({ response, init }) => {
    const res = response()
    expect(streamed(REDACT, res, init)).toBe(res)
  })

  test('a message over 1 MiB cuts the stream with ERR_WARREN_2120', async () => {
    const up = upstreamBody()
    const reader = streamed(REDACT, sse(up.body)).body!.getReader()
    up.send('data: 1\n\n')
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('data: 1\n\n')
    for (let i = 0; i < 17; i++) up.send(`data: ${'x'.repeat(64 * 1024)}\n`)
    await expect(reader.read()).rejects.toMatchObject({ code: 'ERR_WARREN_2120' })
  })

  test('a template that fails for a message cuts the stream with ERR_WARREN_2121', async () => {
    const policy = { on_event_stream_message: [{ actions: [{ type: 'sse-find-replace', config: { replacements: [{ from: 'a', to: '${vars.missing}' }] } }] }] }
    const reader = streamed(policy, sse('data: a\n\n')).body!.getReader()
    await expect(reader.read()).rejects.toMatchObject({ code: 'ERR_WARREN_2121' })
  })

  test('the stream ending inside a message still has that message rewritten', async () => {
    expect(await streamed(REDACT, sse('data: 1\n\ndata: 123-45-6789')).text()).toBe('data: 1\n\ndata: [SSN REDACTED]')
  })

  test('multi-byte characters cut between chunks arrive whole', async () => {
    const bytes = new TextEncoder().encode('data: héllo 123-45-6789\n\n')
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (const b of bytes) c.enqueue(new Uint8Array([b]))
        c.close()
      },
    })
    expect(await streamed(REDACT, sse(body)).text()).toBe('data: héllo [SSN REDACTED]\n\n')
  })
})
