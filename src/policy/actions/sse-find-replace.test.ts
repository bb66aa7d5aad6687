import { describe, expect, test } from 'bun:test'
import { exchange, loadError, run } from '../../../test/helpers/actions.ts'
import { createEventStreamParser, serializeMessage, type EventStreamMessage } from '../../lib/sse.ts'

/** The one message in `text` (which ends with its blank line). */
function message(text: string): EventStreamMessage {
  const [m] = createEventStreamParser().push(text)
  if (!m || typeof m === 'string') throw new TypeError(`no message in ${JSON.stringify(text)}`)
  return m
}

/** Runs sse-find-replace with `config` over the message in `text`; returns what goes to the client and the action's result. */
async function rewrite(config: unknown, text: string, vars: Record<string, unknown> = {}) {
  const ex = exchange('http://a.test/', { message: message(text), vars, response: { status: 200, headers: new Headers({ 'content-type': 'text/event-stream' }) } })
  const outcome = await run({ type: 'sse-find-replace', phase: 'on_event_stream_message', config }, ex)
  expect(outcome.kind).toBe('continue')
  return { text: serializeMessage(ex.message!), result: ex.actions['sse_find_replace'] as { replacements: { replacement_index: bigint; matched_content: string }[] } }
}

// ngrok's documented example (traffic-policy/actions/sse-find-replace, "Redacting sensitive data
// from streaming AI responses"), verbatim.
const REDACT = {
  replacements: [
    { field: 'data', from: '\\d{3}-\\d{2}-\\d{4}', to: '[SSN REDACTED]' },
    { field: 'data', from: '[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\\.[a-zA-Z]{2,}', to: '[EMAIL REDACTED]' },
  ],
}

describe('sse-find-replace config', () => {
  test.each<{ desc: string; phase?: 'on_http_response' | 'on_event_stream_message'; config: unknown; want: RegExp | undefined }>([
    { desc: "ngrok's redaction example", config: REDACT, want: undefined },
    { desc: 'field defaults to data', config: { replacements: [{ from: 'a' }] }, want: undefined },
    { desc: 'retry', config: { replacements: [{ field: 'retry', from: '\\d+', to: '5000' }] }, want: undefined },
    { desc: 'a templated field', config: { replacements: [{ field: '${vars.target_field}', from: 'a' }] }, want: undefined },
    { desc: 'event is not a field it may change', config: { replacements: [{ field: 'event', from: 'a' }] }, want: /ERR_WARREN_2001: .*must be "data" or "retry"/ },
    { desc: 'no rules', config: { replacements: [] }, want: /at least one replacement/ },
    { desc: 'from is required', config: { replacements: [{ to: 'a' }] }, want: /from/ },
    { desc: 'an invalid literal pattern', config: { replacements: [{ from: '(' }] }, want: /invalid regular expression/ },
    { desc: 'unknown keys are refused', config: { replacements: [{ from: 'a', flags: 'i' }] }, want: /flags/ },
    { desc: 'not in on_http_response', phase: 'on_http_response', config: REDACT, want: /cannot run in on_http_response \(it runs in on_event_stream_message\)/ },
  ])('$desc', ({ phase, config, want }) => {
    const got = loadError({ type: 'sse-find-replace', phase: phase ?? 'on_event_stream_message', config })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('sse-find-replace at runtime', () => {
  test.each([
    {
      desc: "ngrok's redaction example: SSN and email in one message",
      config: REDACT,
      text: 'data: {"content":"my ssn is 123-45-6789, mail ann@example.com"}\n\n',
      want: 'data: {"content":"my ssn is [SSN REDACTED], mail [EMAIL REDACTED]"}\n\n',
    },
    {
      desc: "ngrok's emphasis example: every match, with a capture",
      config: { replacements: [{ field: 'data', from: '\\b(IMPORTANT|WARNING|NOTE)\\b', to: '**$1**' }] },
      text: 'data: NOTE this, WARNING that\n\n',
      want: 'data: **NOTE** this, **WARNING** that\n\n',
    },
    {
      desc: "ngrok's retry example",
      config: { replacements: [{ field: 'retry', from: '\\d+', to: '5000' }] },
      text: 'retry: 300\ndata: x 12\n\n',
      want: 'retry: 5000\ndata: x 12\n\n',
    },
    {
      desc: "ngrok's capture-group example",
      config: { replacements: [{ field: 'data', from: '"sensitive_id":\\s*"([^"]+)"', to: '"sensitive_id": "[REDACTED]"' }] },
      text: 'event: delta\ndata: {"sensitive_id": "abc"}\n\n',
      want: 'event: delta\ndata: {"sensitive_id": "[REDACTED]"}\n\n',
    },
    { desc: 'to omitted deletes the match', config: { replacements: [{ from: 'secret ' }] }, text: 'data: a secret b\n\n', want: 'data: a b\n\n' },
    {
      desc: 'multi-line data is matched as one value (joined by LF)',
      config: { replacements: [{ from: 'a\\nb', to: 'a+b' }] },
      text: 'data: a\ndata: b\n\n',
      want: 'data: a+b\n\n',
    },
    { desc: 'rules apply in order, each to the result before', config: { replacements: [{ from: 'a', to: 'b' }, { from: 'b', to: 'c' }] }, text: 'data: ab\n\n', want: 'data: cc\n\n' },
    { desc: 'no match: the message goes out as it came', config: REDACT, text: 'id: 4\r\ndata:  nothing here\r\n\r\n', want: 'id: 4\r\ndata:  nothing here\r\n\r\n' },
    { desc: 'a data rule leaves a message without data alone', config: REDACT, text: 'event: ping\n\n', want: 'event: ping\n\n' },
    { desc: 'a retry rule does not touch data', config: { replacements: [{ field: 'retry', from: '\\d+', to: '1' }] }, text: 'data: 42\n\n', want: 'data: 42\n\n' },
  ])('$desc', async ({ config, text, want }) => {
    expect((await rewrite(config, text)).text).toBe(want)
  })

  test('the result lists each rule that matched with its first match', async () => {
    const { result } = await rewrite(REDACT, 'data: 111-22-3333 222-33-4444 x@y.io\n\n')
    expect(result.replacements).toEqual([
      { replacement_index: 0n, matched_content: '111-22-3333' },
      { replacement_index: 1n, matched_content: 'x@y.io' },
    ])
    expect((await rewrite(REDACT, 'data: clean\n\n')).result.replacements).toEqual([])
  })

  test("field, from and to may be templates (ngrok's CEL example)", async () => {
    const config = { replacements: [{ field: '${vars.target_field}', from: '${vars.pattern}', to: '${vars.replacement}' }] }
    const out = await rewrite(config, 'data: token=abc123\n\n', { target_field: 'data', pattern: 'abc\\d+', replacement: '***' })
    expect(out.text).toBe('data: token=***\n\n')
  })

  test('a templated field that is neither data nor retry skips its rule', async () => {
    const config = { replacements: [{ field: '${vars.f}', from: 'x', to: 'y' }] }
    expect((await rewrite(config, 'data: x\n\n', { f: 'event' })).text).toBe('data: x\n\n')
  })
})
