import { describe, expect, test } from 'bun:test'
import { H1ParseError, parseResponseHead } from '../proxy/h1/parse.ts'
import { RESPONSE_CASES as CASES } from './response-head.cases.ts'
import { scanResponseHead } from './response-head.ts'

// The relay's scan of an upstream response head against the pipeline's parser (parseResponseHead):
// the same accept/refuse decision, the same framing facts, and the same end-to-end fields reaching the
// client (the scan passes lines as bytes, the parser builds `Headers`; compared case-insensitively).

/** The fields of a head as text, lower-case names, one entry per line, sorted (Headers' order is its own). */
function fieldsOf(text: string): string[] {
  const lines = text.split(/\r?\n/).slice(1).filter((l) => l !== '')
  return lines.map((l) => {
    const i = l.indexOf(':')
    return `${l.slice(0, i).toLowerCase()}: ${l.slice(i + 1).trim()}`
  })
}

describe('scanResponseHead() against parseResponseHead()', () => {
  test.each(CASES)('$desc', ({ text }) => {
    const bytes = Buffer.from(text, 'latin1')
    let parsed: ReturnType<typeof parseResponseHead> | H1ParseError
    try {
      parsed = parseResponseHead(text)
    } catch (err) {
      parsed = err as H1ParseError
    }
    if (parsed instanceof H1ParseError) {
      expect(() => scanResponseHead(bytes, bytes.length)).toThrow(H1ParseError)
      return
    }
    const head = scanResponseHead(bytes, bytes.length)
    expect({ status: head.status, minor: head.minor, keepAlive: head.keepAlive, contentLength: head.contentLength, chunked: head.chunked }).toEqual({
      status: parsed.status,
      minor: parsed.minor,
      keepAlive: parsed.keepAlive,
      contentLength: parsed.contentLength,
      chunked: parsed.chunked,
    })
    const out = Buffer.from(head.bytes('')).toString('latin1')
    // Every line ends in CRLF, the status line speaks HTTP/1.1, and a Date is there.
    expect(out).toStartWith(`HTTP/1.1 ${parsed.status} `)
    expect(out).toEndWith('\r\n\r\n')
    expect(out.replaceAll('\r\n', '')).not.toContain('\n')
    expect(out).toMatch(/\r\ndate: /i)
    // What the relay sent before the scan: the parser's end-to-end Headers without Warren-Error-Code, and
    // Content-Length written from the parsed length (none on a 204).
    const want = [...parsed.headers].filter(([name]) => name !== 'content-length' && name !== 'warren-error-code').map(([name, value]) => `${name}: ${value}`)
    if (parsed.contentLength !== -1 && parsed.status !== 204) want.push(`content-length: ${parsed.contentLength}`)
    const got = fieldsOf(out).filter((l) => !l.startsWith('date:') || parsed.headers.has('date'))
    // Headers joins repeated names (except Set-Cookie); the scan keeps them as lines.
    const joined = new Headers()
    for (const line of got) {
      const i = line.indexOf(':')
      joined.append(line.slice(0, i), line.slice(i + 2))
    }
    expect([...joined].map(([name, value]) => `${name}: ${value}`).sort()).toEqual(want.sort())
    // get() answers as Headers.get on the client's fields.
    for (const line of want) {
      const name = line.slice(0, line.indexOf(':'))
      expect(head.get(name)).toBe(joined.get(name))
    }
  })

  test('a control character in an end-to-end value is refused (the parser lets Headers take it)', () => {
    const bytes = Buffer.from('HTTP/1.1 200 OK\r\nX-Del: a\x7fb\r\nX-Ctl: \x01\r\n\r\n', 'latin1')
    expect(() => scanResponseHead(bytes, bytes.length)).toThrow('header X-Del contains control characters')
  })

  test('a head with nothing to change goes out as the bytes read, without a copy', () => {
    const bytes = Buffer.from('HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 5\r\n\r\nhello', 'latin1')
    const head = scanResponseHead(bytes, bytes.length - 5)
    const out = head.bytes('')
    expect(out.buffer).toBe(bytes.buffer)
    expect(out.byteOffset).toBe(bytes.byteOffset)
    expect(out.length).toBe(bytes.length - 5)
  })

  test('the relay fields and a merged Content-Length are added at the end, repeats kept as lines', () => {
    const bytes = Buffer.from('HTTP/1.1 200 OK\r\nSet-Cookie: a\r\nContent-Length: 3, 3\r\nSet-Cookie: b\r\nDate: x\r\n\r\n', 'latin1')
    const out = Buffer.from(scanResponseHead(bytes, bytes.length).bytes('connection: close\r\n')).toString('latin1')
    expect(out).toBe('HTTP/1.1 200 OK\r\nSet-Cookie: a\r\nSet-Cookie: b\r\nDate: x\r\ncontent-length: 3\r\nconnection: close\r\n\r\n')
  })

  test.each([
    { desc: "an agent's own 502 keeps its code", status: 502, code: 'ERR_WARREN_8012', kept: true },
    { desc: 'another code on a 502 is removed', status: 502, code: 'ERR_WARREN_3200', kept: false },
    { desc: 'the code on a 200 is removed', status: 200, code: 'ERR_WARREN_8012', kept: false },
  ])('Warren-Error-Code: $desc', ({ status, code, kept }) => {
    const bytes = Buffer.from(`HTTP/1.1 ${status} X\r\nWarren-Error-Code: ${code}\r\nContent-Length: 0\r\n\r\n`, 'latin1')
    const head = scanResponseHead(bytes, bytes.length, 'ERR_WARREN_8012')
    expect(head.get('warren-error-code')).toBe(kept ? code : null)
    expect(Buffer.from(head.bytes('')).toString('latin1').includes('Warren-Error-Code')).toBe(kept)
  })
})
