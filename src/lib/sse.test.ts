import { describe, expect, test } from 'bun:test'
import { createEventStreamParser, MAX_MESSAGE_CHARS, messageData, parseLine, serializeMessage, setLineValue, setMessageData, type EventStreamItem, type EventStreamMessage } from './sse.ts'

/** Feeds `chunks` and returns every item, the stream's last unterminated message included. */
function parseAll(chunks: string[]): EventStreamItem[] {
  const parser = createEventStreamParser()
  const items = chunks.flatMap((c) => parser.push(c))
  const last = parser.end()
  return last ? [...items, last] : items
}

const messages = (items: EventStreamItem[]) => items.filter((i): i is EventStreamMessage => typeof i !== 'string')
const fields = (m: EventStreamMessage) => m.lines.map((l) => [l.name, l.value])
const relayed = (items: EventStreamItem[]) => items.map((i) => (typeof i === 'string' ? i : serializeMessage(i))).join('')

/** Every way of cutting `text` in two, and one character per chunk. */
function splits(text: string): string[][] {
  return [...Array.from({ length: text.length + 1 }, (_, i) => [text.slice(0, i), text.slice(i)]), text.split('')]
}

describe('parseLine() reads fields as EventSource does', () => {
  test.each([
    { desc: 'one space after the colon is dropped', raw: 'data: x', want: ['data', 'x'] },
    { desc: 'no space', raw: 'data:x', want: ['data', 'x'] },
    { desc: 'only the first space', raw: 'data:  x', want: ['data', ' x'] },
    { desc: 'later colons belong to the value', raw: 'data: {"a":1}', want: ['data', '{"a":1}'] },
    { desc: 'no colon: the line is the name', raw: 'data', want: ['data', ''] },
    { desc: 'a comment', raw: ': keep-alive', want: [null, ' keep-alive'] },
    { desc: 'retry', raw: 'retry: 3000', want: ['retry', '3000'] },
    { desc: 'an unknown field', raw: 'x-custom: 1', want: ['x-custom', '1'] },
  ])('$desc', ({ raw, want }) => {
    const line = parseLine(raw)
    expect([line.name, line.value]).toEqual([...want])
    expect(line.raw).toBe(raw)
  })
})

describe('createEventStreamParser()', () => {
  test.each([
    {
      desc: 'LF line ends, two messages',
      text: 'event: a\ndata: 1\n\ndata: 2\n\n',
      want: [[['event', 'a'], ['data', '1']], [['data', '2']]],
      data: ['1', '2'],
    },
    { desc: 'CRLF line ends', text: 'data: 1\r\nid: 7\r\n\r\ndata: 2\r\n\r\n', want: [[['data', '1'], ['id', '7']], [['data', '2']]], data: ['1', '2'] },
    { desc: 'CR line ends', text: 'data: 1\rretry: 10\r\rdata: 2\r\r', want: [[['data', '1'], ['retry', '10']], [['data', '2']]], data: ['1', '2'] },
    { desc: 'multi-line data joins with LF', text: 'data: a\ndata: b\ndata:\n\n', want: [[['data', 'a'], ['data', 'b'], ['data', '']]], data: ['a\nb\n'] },
    { desc: 'comments stay among the lines', text: ': hi\ndata: 1\n: there\n\n', want: [[[null, ' hi'], ['data', '1'], [null, ' there']]], data: ['1'] },
    { desc: 'a message without data', text: 'retry: 5000\n\n', want: [[['retry', '5000']]], data: [undefined] },
  ])('$desc, cut at every position', ({ text, want, data }) => {
    for (const chunks of splits(text)) {
      const items = parseAll(chunks)
      const got = messages(items)
      expect(got.map(fields)).toEqual(want as never)
      expect(got.map(messageData)).toEqual([...data])
      // Untouched, the stream goes out byte for byte as it came, however it was cut.
      expect(relayed(items)).toBe(text)
    }
  })

  test('a message is handed on when its blank line arrives, not later', () => {
    const parser = createEventStreamParser()
    expect(parser.push('data: 1\n')).toEqual([])
    const items = parser.push('\ndata: 2')
    expect(messages(items).map(messageData)).toEqual(['1'])
    expect(parser.push('\n')).toEqual([])
    expect(messages(parser.push('\n')).map(messageData)).toEqual(['2'])
  })

  test('a CR ending a message goes at once; the LF that follows in the next chunk passes as text', () => {
    const parser = createEventStreamParser()
    const first = parser.push('data: 1\r\n\r')
    expect(messages(first).map(messageData)).toEqual(['1'])
    expect(parser.push('\ndata: 2\r\n\r\n')).toEqual(['\n', expect.objectContaining({ raw: 'data: 2\r\n\r\n' })])
  })

  test('CR, LF and LF in three chunks: a CRLF, then the blank line', () => {
    const parser = createEventStreamParser()
    expect(parser.push('data: 1\r')).toEqual([])
    expect(parser.push('\n')).toEqual([])
    expect(messages(parser.push('\n')).map((m) => m.raw)).toEqual(['data: 1\r\n\n'])
  })

  test('blank lines between messages pass as text', () => {
    const items = parseAll(['\n\ndata: 1\n\n\n'])
    expect(items.map((i) => (typeof i === 'string' ? i : 'MESSAGE'))).toEqual(['\n', '\n', 'MESSAGE', '\n'])
  })

  test('the stream ending inside a message gives that message, unterminated', () => {
    const items = parseAll(['data: 1\n\ndata: 2'])
    const last = messages(items)[1]!
    expect(messageData(last)).toBe('2')
    expect(last.end).toBe('')
    setMessageData(last, 'two')
    expect(serializeMessage(last)).toBe('data: two')
  })

  test(`a message longer than ${MAX_MESSAGE_CHARS} characters is refused with ERR_WARREN_2120`, () => {
    const parser = createEventStreamParser()
    const chunk = `data: ${'x'.repeat(64 * 1024)}\n`
    let error: unknown
    try {
      for (let i = 0; i < 20; i++) parser.push(chunk)
    } catch (err) {
      error = err
    }
    expect((error as { code?: string }).code).toBe('ERR_WARREN_2120')
  })

  test('a long line arriving one character at a time is read once (no rescans)', () => {
    const parser = createEventStreamParser()
    const started = performance.now()
    parser.push('data: ')
    for (let i = 0; i < 200_000; i++) parser.push('y')
    const items = parser.push('\n\n')
    expect(messageData(messages(items)[0]!)).toHaveLength(200_000)
    expect(performance.now() - started).toBeLessThan(5000)
  })
})

describe('rewriting a message', () => {
  test('new data goes where the first data line was, one line per line, with the message line end', () => {
    const [m] = messages(parseAll(['id: 1\r\ndata: a\r\nevent: e\r\ndata: b\r\n\r\n']))
    setMessageData(m!, 'x\ny\r\nz')
    expect(serializeMessage(m!)).toBe('id: 1\r\ndata: x\r\ndata: y\r\ndata: z\r\nevent: e\r\n\r\n')
  })

  test('a rewritten CRLF message keeps CRLF however the chunks cut its line ends', () => {
    for (const chunks of splits('data: 123\r\nid: 1\r\n\r\n')) {
      const items = parseAll(chunks)
      for (const m of messages(items)) setMessageData(m, 'X')
      expect(relayed(items)).toBe('data: X\r\nid: 1\r\n\r\n')
    }
  })

  test('a value starting with a space survives the space EventSource drops', () => {
    const [m] = messages(parseAll(['data:a\n\n']))
    setMessageData(m!, ' lead')
    const text = serializeMessage(m!)
    expect(messageData(messages(parseAll([text]))[0]!)).toBe(' lead')
  })

  test('a rewritten retry stays one line: no field can be injected', () => {
    const [m] = messages(parseAll(['retry: 10\ndata: d\n\n']))
    setLineValue(m!, m!.lines[0]!, '20\ndata: injected')
    const again = messages(parseAll([serializeMessage(m!)]))
    expect(again.map(fields)).toEqual([[['retry', '20data: injected'], ['data', 'd']]])
  })
})
