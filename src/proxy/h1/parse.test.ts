import { describe, expect, test } from 'bun:test'
import { ChunkedDecoder, findHeadEnd, Framing, framingOf, H1ParseError, parseResponseHead } from './parse.ts'

const enc = new TextEncoder()
const dec = new TextDecoder()

function head(text: string) {
  return parseResponseHead(text)
}

describe('findHeadEnd()', () => {
  test.each([
    { desc: 'CRLF head', input: 'HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody', end: 25 },
    { desc: 'bare LF head', input: 'HTTP/1.1 200 OK\nA: b\n\nbody', end: 22 },
    { desc: 'incomplete head', input: 'HTTP/1.1 200 OK\r\nA: b\r\n', end: -1 },
    { desc: 'incomplete blank line', input: 'HTTP/1.1 200 OK\r\nA: b\r\n\r', end: -1 },
    { desc: 'no line feed at all', input: 'HTTP/1.1 200 OK', end: -1 },
  ])('$desc', ({ input, end }) => {
    expect(findHeadEnd(enc.encode(input), 0)).toBe(end)
  })

  test('finds the end when rescanning from previousLength - 3 at every split point', () => {
    const bytes = enc.encode('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')
    for (let split = 1; split < bytes.length; split++) {
      const first = bytes.subarray(0, split)
      if (findHeadEnd(first, 0) !== -1) continue
      expect(findHeadEnd(bytes, Math.max(0, split - 3))).toBe(bytes.length)
    }
  })
})

describe('parseResponseHead()', () => {
  test('reads status, reason, fields in order and repeated Set-Cookie', () => {
    const h = head('HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Empty:\r\n\r\n')
    expect(h.status).toBe(404)
    expect(h.statusText).toBe('Not Found')
    expect(h.contentLength).toBe(5)
    expect(h.chunked).toBe(false)
    expect(h.keepAlive).toBe(true)
    expect(h.headers.getSetCookie()).toEqual(['a=1', 'b=2'])
    expect(h.headers.get('x-empty')).toBe('')
  })

  test.each([
    { desc: 'no reason phrase', text: 'HTTP/1.1 204\r\n\r\n', status: 204, reason: '' },
    { desc: 'empty reason phrase', text: 'HTTP/1.1 200 \r\n\r\n', status: 200, reason: '' },
    { desc: 'reason with spaces', text: 'HTTP/1.1 500 Internal Server Error\r\n\r\n', status: 500, reason: 'Internal Server Error' },
    { desc: 'bare LF lines', text: 'HTTP/1.1 200 OK\nA: b\n\n', status: 200, reason: 'OK' },
  ])('accepts $desc', ({ text, status, reason }) => {
    const h = head(text)
    expect(h.status).toBe(status)
    expect(h.statusText).toBe(reason)
  })

  test('drops hop-by-hop fields and the fields Connection names, but reads them for framing', () => {
    const h = head(
      'HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\nX-Private: 1\r\n' +
        'Transfer-Encoding: chunked\r\nTrailer: X-T\r\nUpgrade: h2c\r\nProxy-Authenticate: Basic\r\nX-Kept: 2\r\n\r\n',
    )
    expect(h.chunked).toBe(true)
    expect([...h.headers.keys()]).toEqual(['x-kept'])
  })

  test('equal repeated Content-Length values reach the headers once', () => {
    expect(head('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n').headers.get('content-length')).toBe('3')
  })

  test('trims optional whitespace around values', () => {
    expect(head('HTTP/1.1 200 OK\r\nA: \t x y \t\r\n\r\n').headers.get('a')).toBe('x y')
  })

  test.each([
    { desc: 'HTTP/1.1 default', text: 'HTTP/1.1 200 OK\r\n\r\n', keepAlive: true },
    { desc: 'Connection: close', text: 'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n', keepAlive: false },
    { desc: 'close in a token list', text: 'HTTP/1.1 200 OK\r\nConnection: foo, Close\r\n\r\n', keepAlive: false },
    { desc: 'HTTP/1.0 default', text: 'HTTP/1.0 200 OK\r\n\r\n', keepAlive: false },
    { desc: 'HTTP/1.0 keep-alive', text: 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n', keepAlive: true },
  ])('keepAlive for $desc', ({ text, keepAlive }) => {
    expect(head(text).keepAlive).toBe(keepAlive)
  })

  test.each([
    { desc: 'repeated equal Content-Length fields', text: 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n' },
    { desc: 'a Content-Length list of equal values', text: 'HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n' },
  ])('accepts $desc', ({ text }) => {
    expect(head(text).contentLength).toBe(3)
  })

  test.each([
    { desc: 'an empty head', text: '\r\n' },
    { desc: 'HTTP/2 status line', text: 'HTTP/2 200\r\n\r\n' },
    { desc: 'HTTP/1.2', text: 'HTTP/1.2 200 OK\r\n\r\n' },
    { desc: 'lower-case protocol', text: 'http/1.1 200 OK\r\n\r\n' },
    { desc: 'two-digit status', text: 'HTTP/1.1 20 OK\r\n\r\n' },
    { desc: 'status 600', text: 'HTTP/1.1 600 Nope\r\n\r\n' },
    { desc: 'status 099', text: 'HTTP/1.1 099 Nope\r\n\r\n' },
    { desc: 'leading blank line', text: '\r\nHTTP/1.1 200 OK\r\n\r\n' },
    { desc: 'garbage', text: 'hello world\r\n\r\n' },
    { desc: 'obs-fold', text: 'HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n' },
    { desc: 'whitespace before the colon', text: 'HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n' },
    { desc: 'a line without colon', text: 'HTTP/1.1 200 OK\r\nnocolon\r\n\r\n' },
    { desc: 'an empty field name', text: 'HTTP/1.1 200 OK\r\n: v\r\n\r\n' },
    { desc: 'a bad field name', text: 'HTTP/1.1 200 OK\r\nA(b): v\r\n\r\n' },
    { desc: 'NUL in a value', text: 'HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n' },
    { desc: 'NUL in a hop-by-hop value', text: 'HTTP/1.1 200 OK\r\nConnection: b\0c\r\n\r\n' },
    { desc: 'a bad name before a hop-by-hop field', text: 'HTTP/1.1 200 OK\r\nX Y: 1\r\nConnection: close\r\n\r\n' },
    { desc: 'a head without its blank line', text: 'HTTP/1.1 200 OK\r\nA: b\r\n' },
    { desc: 'bare CR in a value', text: 'HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n' },
    { desc: 'control character in the reason', text: 'HTTP/1.1 200 O\x01K\r\n\r\n' },
    { desc: 'Transfer-Encoding with Content-Length', text: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n' },
    { desc: 'Content-Length before Transfer-Encoding', text: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n' },
    { desc: 'conflicting Content-Length fields', text: 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n' },
    { desc: 'conflicting Content-Length list', text: 'HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n' },
    { desc: 'signed Content-Length', text: 'HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n' },
    { desc: 'hex Content-Length', text: 'HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n' },
    { desc: 'empty Content-Length', text: 'HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n' },
    { desc: 'huge Content-Length', text: 'HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n' },
    { desc: 'Transfer-Encoding gzip', text: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n' },
    { desc: 'Transfer-Encoding gzip, chunked', text: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n' },
    { desc: 'Transfer-Encoding chunked twice', text: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n' },
    { desc: 'Transfer-Encoding on HTTP/1.0', text: 'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' },
  ])('rejects $desc', ({ text }) => {
    expect(() => head(text)).toThrow(H1ParseError)
  })

  test('accepts Transfer-Encoding chunked in any case', () => {
    expect(head('HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n').chunked).toBe(true)
  })
})

describe('framingOf()', () => {
  test.each([
    { desc: 'HEAD with a length', text: 'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n', method: 'HEAD', framing: Framing.None },
    { desc: '204', text: 'HTTP/1.1 204 No Content\r\n\r\n', method: 'GET', framing: Framing.None },
    { desc: '304 with a length', text: 'HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n', method: 'GET', framing: Framing.None },
    { desc: '100', text: 'HTTP/1.1 100 Continue\r\n\r\n', method: 'POST', framing: Framing.None },
    { desc: 'zero length', text: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', method: 'GET', framing: Framing.None },
    { desc: 'a length', text: 'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n', method: 'GET', framing: Framing.Length },
    { desc: 'chunked', text: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', method: 'GET', framing: Framing.Chunked },
    { desc: 'neither (read until close)', text: 'HTTP/1.1 200 OK\r\n\r\n', method: 'GET', framing: Framing.Close },
  ])('$desc', ({ text, method, framing }) => {
    expect(framingOf(head(text), method)).toBe(framing)
  })
})

function decodeAll(input: string, pieceSize: number, strict = false): { body: string; consumed: number; done: boolean } {
  const bytes = enc.encode(input)
  const decoder = new ChunkedDecoder({ strict })
  const parts: Uint8Array[] = []
  let consumed = 0
  for (let at = 0; at < bytes.length && !decoder.done; at += pieceSize) {
    const piece = bytes.subarray(at, Math.min(at + pieceSize, bytes.length))
    const used = decoder.push(piece, 0, (c) => parts.push(c.slice()))
    consumed += used
    if (used < piece.length) break
  }
  return { body: parts.map((p) => dec.decode(p)).join(''), consumed, done: decoder.done }
}

describe('ChunkedDecoder', () => {
  const wire = '5\r\nhello\r\n7;ext=1;q="x"\r\n, world\r\nA\r\n0123456789\r\n0\r\nTrailer: yes\r\nX: y\r\n\r\nNEXT'

  test.each([1, 2, 3, 5, 7, 64, 1000])('decodes when fed %i bytes at a time and stops at the message end', (size) => {
    const out = decodeAll(wire, size)
    expect(out.body).toBe('hello, world0123456789')
    expect(out.done).toBe(true)
    expect(out.consumed).toBe(wire.length - 'NEXT'.length)
  })

  test.each([
    { desc: 'upper-case hex size', input: 'A\r\n0123456789\r\n0\r\n\r\n', body: '0123456789' },
    { desc: 'leading zeros', input: '0005\r\nhello\r\n000\r\n\r\n', body: 'hello' },
    { desc: 'whitespace before an extension', input: '5 ;a=b\r\nhello\r\n0\r\n\r\n', body: 'hello' },
    { desc: 'an empty body', input: '0\r\n\r\n', body: '' },
  ])('accepts $desc', ({ input, body }) => {
    const out = decodeAll(input, 1)
    expect(out.body).toBe(body)
    expect(out.done).toBe(true)
  })

  test('is not done before the final CRLF', () => {
    expect(decodeAll('5\r\nhello\r\n0\r\n', 100).done).toBe(false)
    expect(decodeAll('5\r\nhello\r\n0\r\nA: b\r\n', 100).done).toBe(false)
  })

  test.each([
    { desc: 'missing size', input: '\r\nhello\r\n' },
    { desc: 'non-hex size', input: 'g\r\nhello\r\n' },
    { desc: 'signed size', input: '-5\r\nhello\r\n' },
    { desc: 'size with 0x', input: '0x5\r\nhello\r\n' },
    { desc: 'too many size digits', input: 'fffffffffffffff\r\n' },
    { desc: 'bare LF after the size', input: '5\nhello\r\n' },
    { desc: 'data longer than the size', input: '5\r\nhello!\r\n0\r\n\r\n' },
    { desc: 'bare LF after data', input: '5\r\nhello\n0\r\n\r\n' },
    { desc: 'LF inside an extension', input: '5;a\nb\r\nhello\r\n' },
    { desc: 'bare LF in trailers', input: '0\r\nA: b\n\r\n' },
    { desc: 'an endless extension', input: `5;${'x'.repeat(5000)}\r\n` },
  ])('rejects $desc', ({ input }) => {
    expect(() => decodeAll(input, 1)).toThrow(H1ParseError)
    expect(() => decodeAll(input, 4096)).toThrow(H1ParseError)
  })

  test.each([
    { desc: 'nine size digits', input: 'fffffffff\r\nhello\r\n0\r\n\r\n' },
    { desc: 'eleven leading zeros', input: '00000000005\r\nhello\r\n0\r\n\r\n' },
    { desc: 'whitespace after the size without an extension', input: '5 \r\nhello\r\n0\r\n\r\n' },
    { desc: 'a trailer line without a colon', input: '5\r\nhello\r\n0\r\n0\r\n\r\n' },
    { desc: 'a trailer name that is not a token', input: '0\r\nA b: c\r\n\r\n' },
    { desc: 'a control character in a trailer value', input: '0\r\nA: b\x01c\r\n\r\n' },
  ])('strict (bytes passed on as they are) rejects $desc, which the lenient reading accepts', ({ input }) => {
    expect(() => decodeAll(input, 4096)).not.toThrow()
    expect(() => decodeAll(input, 1, true)).toThrow(H1ParseError)
    expect(() => decodeAll(input, 4096, true)).toThrow(H1ParseError)
  })

  test('strict accepts what every parser reads alike: 8 digits, BWS then `;` extensions, token trailers', () => {
    const input = '0000000A ;a=b\r\n0123456789\r\n0\r\nX-Sum: 1\t2\r\nB:\r\n\r\n'
    for (const size of [1, 3, 4096]) expect(decodeAll(input, size, true)).toMatchObject({ body: '0123456789', done: true })
  })

  test('hands out views, not copies, of large chunks', () => {
    const data = new Uint8Array(70000).fill(7)
    const wireBytes = new Uint8Array([...enc.encode('11170\r\n'), ...data, ...enc.encode('\r\n0\r\n\r\n')])
    const seen: Uint8Array[] = []
    const decoder = new ChunkedDecoder()
    decoder.push(wireBytes, 0, (c) => seen.push(c))
    expect(decoder.done).toBe(true)
    expect(seen.length).toBe(1)
    expect(seen[0]!.buffer).toBe(wireBytes.buffer)
    expect(seen[0]!.length).toBe(70000)
  })
})
