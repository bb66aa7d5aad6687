import { describe, expect, test } from 'bun:test'
import { exchange, loadError, run } from '../../../test/helpers/actions.ts'
import { BUFFER_LIMIT, STREAM_WINDOW } from './request-body-find-replace.ts'

const body = (text: string) => new Response(text).body!

/** A body delivered in `size`-character chunks without a Content-Length (the streamed path). */
function chunked(text: string, size: number): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text)
  let at = 0
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close()
      c.enqueue(bytes.subarray(at, at + size))
      at += size
    },
  })
}

describe('request-body-find-replace config', () => {
  test.each<{ desc: string; config: unknown; want: RegExp | undefined }>([
    { desc: 'one rule', config: { replacements: [{ from: 'a', to: 'b' }] }, want: undefined },
    { desc: 'to defaults to deletion', config: { replacements: [{ from: 'a' }] }, want: undefined },
    { desc: 'no rules', config: { replacements: [] }, want: /at least one replacement/ },
    { desc: 'empty from', config: { replacements: [{ from: '' }] }, want: /must not be empty/ },
    { desc: 'bad regexp', config: { replacements: [{ from: '(' }] }, want: /invalid regular expression/ },
    { desc: 'unknown key', config: { replacements: [{ from: 'a', with: 'b' }] }, want: /with/ },
  ])('$desc', ({ config, want }) => {
    const got = loadError({ type: 'request-body-find-replace', config })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('request-body-find-replace at runtime', () => {
  test('buffered: rules in order, captures, Content-Length updated, result lists first matches', async () => {
    const text = 'api_key=abc123&email=a@b.test&api_key=zzz'
    const ex = exchange('http://a.test/', { method: 'POST', body: body(text), headersInit: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(text.length) } })
    await run({ type: 'request-body-find-replace', config: { replacements: [{ from: 'api_key=([a-z0-9]+)', to: 'api_key=REDACTED' }, { from: 'REDACTED', to: '[$&]' }, { from: 'nomatch' }] } }, ex)
    const out = await new Response(ex.body).text()
    expect(out).toBe('api_key=[REDACTED]&email=a@b.test&api_key=[REDACTED]')
    expect(ex.headers.get('content-length')).toBe(String(out.length))
    expect(ex.actions['request_body_find_replace']).toEqual({ replacements: [{ replacement_index: 0n, matched_content: 'api_key=abc123' }, { replacement_index: 1n, matched_content: 'REDACTED' }] })
  })

  test('templates in from and to', async () => {
    const ex = exchange('http://a.test/', { method: 'POST', body: body('hello NAME'), headersInit: { 'content-length': '10', 'x-name': 'warren' } })
    ex.vars['pattern'] = 'NAME'
    await run({ type: 'request-body-find-replace', config: { replacements: [{ from: '${vars.pattern}', to: "${req.headers['x-name'][0]}" }] } }, ex)
    expect(await new Response(ex.body).text()).toBe('hello warren')
  })

  test('streamed: large chunked bodies are rewritten across chunk boundaries, Content-Length dropped', async () => {
    const unit = 'secret-token '
    const text = unit.repeat(Math.ceil((3 * STREAM_WINDOW) / unit.length)) + 'end'
    const ex = exchange('http://a.test/', { method: 'POST', body: chunked(text, 1000), headersInit: { 'content-type': 'text/plain', 'content-length': String(BUFFER_LIMIT + 1) } })
    await run({ type: 'request-body-find-replace', config: { replacements: [{ from: 'secret-token', to: 'x' }] } }, ex)
    expect(ex.headers.has('content-length')).toBe(false)
    expect(await new Response(ex.body).text()).toBe(text.replaceAll('secret-token', 'x'))
  })

  test.each<{ desc: string; headers: Record<string, string> }>([
    { desc: 'compressed body', headers: { 'content-encoding': 'gzip' } },
    { desc: 'binary body', headers: { 'content-type': 'application/octet-stream' } },
  ])('left alone: $desc', async ({ headers }) => {
    const original = body('aaa')
    const ex = exchange('http://a.test/', { method: 'POST', body: original, headersInit: headers })
    await run({ type: 'request-body-find-replace', config: { replacements: [{ from: 'a', to: 'b' }] } }, ex)
    expect(ex.body).toBe(original)
  })
})
