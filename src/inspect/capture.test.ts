import { describe, expect, test } from 'bun:test'
import { CaptureStore, HttpTap, type Exchange } from './capture.ts'

const enc = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array) => new TextDecoder().decode(b)

/** Feeds a conversation to a tap, in the given pieces, and returns what the store holds (oldest first). */
function run(parts: ['c' | 'u', string][], options: { split?: number; limits?: ConstructorParameters<typeof CaptureStore>[0] } = {}): Exchange[] {
  const store = new CaptureStore(options.limits)
  const tap = new HttpTap(store, { name: 'web', url: 'https://web.example.com' }, '1.2.3.4:5')
  for (const [side, data] of parts) {
    const bytes = enc(data)
    const step = options.split ?? bytes.length
    for (let i = 0; i < bytes.length; i += step) (side === 'c' ? tap.client.bind(tap) : tap.upstream.bind(tap))(bytes.subarray(i, i + step))
  }
  tap.close()
  return [...store.list()].reverse()
}

describe('HttpTap', () => {
  test.each([1, 3, 1000])('a GET and its answer, fed %i byte(s) at a time', (split) => {
    const [e] = run(
      [
        ['c', 'GET /a?b=1 HTTP/1.1\r\nHost: web.example.com\r\nAccept: */*\r\n\r\n'],
        ['u', 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello'],
      ],
      { split },
    )
    expect(e!.request).toMatchObject({ method: 'GET', uri: '/a?b=1', proto: 'HTTP/1.1', headers: [['Host', 'web.example.com'], ['Accept', '*/*']] })
    expect(e!.response).toMatchObject({ status: 200, statusText: 'OK', headers: [['Content-Type', 'text/plain'], ['Content-Length', '5']] })
    expect(text(e!.response!.body.bytes)).toBe('hello')
    expect(e!.durationMs).toBeNumber()
    expect(e!.error).toBeUndefined()
    expect(e!.clientAddr).toBe('1.2.3.4:5')
  })

  test('keep-alive: several exchanges on one connection, pipelined', () => {
    const list = run([
      ['c', 'GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\n\r\n'],
      ['u', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n2HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'],
    ])
    expect(list.map((e) => [e.request.uri, e.response?.status, text(e.response!.body.bytes)])).toEqual([
      ['/1', 200, '1'],
      ['/2', 201, '2'],
      ['/3', 404, ''],
    ])
    expect(text(list[1]!.request.body.bytes)).toBe('abc')
  })

  test('chunked bodies are decoded both ways', () => {
    const [e] = run([
      ['c', 'POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n'],
      ['u', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n'],
    ], { split: 4 })
    expect(text(e!.request.body.bytes)).toBe('abcde')
    expect(text(e!.response!.body.bytes)).toBe('hello world')
    expect(e!.durationMs).toBeNumber()
  })

  test('HEAD, 204 and 304 answers have no body even with a Content-Length', () => {
    const list = run([
      ['c', 'HEAD /h HTTP/1.1\r\n\r\nGET /n HTTP/1.1\r\n\r\nGET /m HTTP/1.1\r\n\r\n'],
      ['u', 'HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n'],
    ])
    expect(list.map((e) => e.response?.status)).toEqual([200, 204, 304])
    expect(list.every((e) => e.durationMs !== undefined && e.error === undefined)).toBe(true)
  })

  test('100 Continue is not taken for the answer', () => {
    const [e] = run([
      ['c', 'PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n'],
      ['u', 'HTTP/1.1 100 Continue\r\n\r\n'],
      ['c', 'ok'],
      ['u', 'HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n'],
    ])
    expect(e!.response!.status).toBe(201)
    expect(text(e!.request.body.bytes)).toBe('ok')
  })

  test('a response delimited by the close ends with the connection', () => {
    const [e] = run([
      ['c', 'GET / HTTP/1.1\r\n\r\n'],
      ['u', 'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end'],
    ])
    expect(text(e!.response!.body.bytes)).toBe('until the end')
    expect(e!.error).toBeUndefined()
  })

  test('a websocket upgrade is recorded as 101 and the frames after it are not parsed', () => {
    const list = run([
      ['c', 'GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'],
      ['u', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello'],
      ['c', '\x81\x85GET / HTTP/1.1\r\n\r\n'],
    ])
    expect(list).toHaveLength(1)
    expect(list[0]!.response!.status).toBe(101)
    expect(list[0]!.error).toBeUndefined()
  })

  test('a request without an answer is marked when the connection closes', () => {
    const [e] = run([['c', 'GET /slow HTTP/1.1\r\n\r\n']])
    expect(e!.response).toBeUndefined()
    expect(e!.error).toContain('before a response')
    expect(e!.durationMs).toBeNumber()
  })

  test('a response cut short is marked', () => {
    const [e] = run([
      ['c', 'GET / HTTP/1.1\r\n\r\n'],
      ['u', 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this'],
    ])
    expect(e!.error).toContain('before the response ended')
    expect(e!.response!.body.size).toBe(9)
  })

  test('bodies are captured up to the per-body cap, with the real size', () => {
    const [e] = run(
      [
        ['c', 'POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789'],
        ['u', 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabcdef'],
      ],
      { limits: { maxBodyBytes: 4 }, split: 3 },
    )
    expect(e!.request.body).toMatchObject({ size: 10, truncated: true })
    expect(text(e!.request.body.bytes)).toBe('0123')
    expect(e!.response!.body).toMatchObject({ size: 6, truncated: true })
  })

  test('framing headers are read in any case, with spaces before the colon, and over several lines', () => {
    const list = run([
      ['c', 'POST /a HTTP/1.1\r\ncontent-LENGTH : 3\r\n\r\nabcPOST /b HTTP/1.1\r\nTransfer-Encoding: gzip\r\ntransfer-encoding: Chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n'],
      ['u', 'HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 9\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'],
    ])
    expect(list.map((e) => [e.request.uri, text(e.request.body.bytes), text(e.response!.body.bytes)])).toEqual([
      ['/a', 'abc', 'ok'],
      ['/b', 'xy', ''],
    ])
  })

  test('bytes are copied when captured: the reads they came in may be large and are not kept alive', () => {
    const store = new CaptureStore()
    const tap = new HttpTap(store, { name: 'x', url: 'u' }, 'c')
    const read = new Uint8Array(64 * 1024).fill(120)
    read.set(enc('GET /big HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc'))
    tap.client(read.subarray(0, 43))
    const answer = enc('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody')
    tap.upstream(answer.subarray(0, 20))
    answer.subarray(0, 20).fill(0)
    tap.upstream(answer.subarray(20))
    answer.fill(0)
    read.fill(0)
    const [e] = store.list()
    expect(e!.request.uri).toBe('/big')
    expect(text(e!.request.body.bytes)).toBe('abc')
    expect(e!.request.body.bytes.buffer.byteLength).toBe(3)
    expect(e!.response!.status).toBe(200)
    expect(text(e!.response!.body.bytes)).toBe('body')
  })

  test('an exchange keeps its id once read, and a body read early grows with later chunks', () => {
    const store = new CaptureStore()
    const tap = new HttpTap(store, { name: 'x', url: 'u' }, 'c')
    tap.client(enc('GET / HTTP/1.1\r\n\r\n'))
    tap.upstream(enc('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc'))
    const [e] = store.list()
    const id = e!.id
    expect(text(e!.response!.body.bytes)).toBe('abc')
    tap.upstream(enc('def'))
    expect(text(e!.response!.body.bytes)).toBe('abcdef')
    expect(store.list()[0]!.id).toBe(id)
    expect(store.get(id)).toBe(e)
  })

  test('bytes that are not HTTP stop the capture without throwing', () => {
    const store = new CaptureStore()
    const tap = new HttpTap(store, { name: 'x', url: 'u' }, 'c')
    expect(() => {
      tap.client(enc('POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'))
      tap.client(enc('GET /after HTTP/1.1\r\n\r\n'))
      tap.upstream(new Uint8Array(70 * 1024).fill(65))
      tap.close()
    }).not.toThrow()
    expect(store.list().map((e) => e.request.uri)).toEqual(['/'])
  })
})

describe('CaptureStore', () => {
  const conversation = (n: number, bodyBytes: number) =>
    Array.from({ length: n }, (_, i) => [
      ['c', `POST /${i} HTTP/1.1\r\nContent-Length: ${bodyBytes}\r\n\r\n${'x'.repeat(bodyBytes)}`],
      ['u', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'],
    ]).flat() as ['c' | 'u', string][]

  test('keeps the newest entries when over the count limit', () => {
    const list = run(conversation(10, 1), { limits: { maxEntries: 3 } })
    expect(list.map((e) => e.request.uri)).toEqual(['/7', '/8', '/9'])
  })

  test('the ring wraps around many times and still lists newest first', () => {
    const list = run(conversation(1000, 1), { limits: { maxEntries: 7 } })
    expect(list.map((e) => e.request.uri)).toEqual(['/993', '/994', '/995', '/996', '/997', '/998', '/999'])
  })

  test('drops the oldest entries when over the byte limit', () => {
    const list = run(conversation(10, 100), { limits: { maxBytes: 350 } })
    expect(list.map((e) => e.request.uri)).toEqual(['/7', '/8', '/9'])
  })

  test('listeners hear new and completed exchanges; clear empties it', () => {
    const store = new CaptureStore()
    const seen: string[] = []
    store.subscribe((e) => seen.push(`${e.request.uri}:${e.response?.status ?? 'open'}`))
    const tap = new HttpTap(store, { name: 'x', url: 'u' }, 'c')
    tap.client(enc('GET /a HTTP/1.1\r\n\r\n'))
    tap.upstream(enc('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'))
    expect(seen).toEqual(['/a:open', '/a:200'])
    expect(store.get(store.list()[0]!.id)?.request.uri).toBe('/a')
    store.clear()
    expect(store.list()).toEqual([])
  })
})

describe('HttpTap client address', () => {
  test('the client the edge appended to X-Forwarded-For, not the pooled stream\'s address', () => {
    const [forwarded, direct] = run([
      ['c', 'GET /1 HTTP/1.1\r\nX-Forwarded-For: 10.0.0.9, 203.0.113.7\r\n\r\nGET /2 HTTP/1.1\r\n\r\n'],
      ['u', 'HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n'],
    ])
    expect(forwarded!.clientAddr).toBe('203.0.113.7')
    expect(direct!.clientAddr).toBe('1.2.3.4:5')
  })
})
