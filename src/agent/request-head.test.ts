import { describe, expect, test } from 'bun:test'
import { parseRequestHead, RequestHeadError } from './request-head.ts'

describe('parseRequestHead()', () => {
  test.each([
    { desc: 'framing, TE: trailers and Connection-named fields', head: 'POST /x HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: x-hop\r\nX-Hop: 1\r\nTransfer-Encoding: chunked\r\n\r\n', want: { method: 'POST', target: '/x', chunked: true, trailers: true, close: false, headers: [['host', 'a']] } },
    { desc: 'repeated equal Content-Length', head: 'PUT / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\n', want: { contentLength: 3, chunked: false } },
    { desc: 'HTTP/1.0 closes', head: 'GET / HTTP/1.0\r\n\r\n', want: { minor: 0, close: true } },
    { desc: 'Connection: close', head: 'GET / HTTP/1.1\r\nconnection: close\r\n\r\n', want: { close: true } },
    { desc: 'an upgrade', head: 'GET / HTTP/1.1\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n', want: { upgrade: true } },
  ])('reads $desc', ({ head, want }) => {
    expect(parseRequestHead(head)).toMatchObject(want)
  })

  test.each([
    { desc: 'Transfer-Encoding with Content-Length', head: 'POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n', what: 'both' },
    { desc: 'a coding other than chunked', head: 'POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n', what: 'Transfer-Encoding' },
    { desc: 'conflicting Content-Length', head: 'POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n', what: 'conflicting' },
    { desc: 'obs-fold', head: 'GET / HTTP/1.1\r\nx-a: 1\r\n 2\r\n\r\n', what: 'folding' },
    { desc: 'whitespace before the colon', head: 'GET / HTTP/1.1\r\nx-a : 1\r\n\r\n', what: 'header name' },
    { desc: 'HTTP/2 request line', head: 'GET / HTTP/2\r\n\r\n', what: 'request line' },
  ])('refuses $desc', ({ head, what }) => {
    expect(() => parseRequestHead(head)).toThrow(RequestHeadError)
    expect(() => parseRequestHead(head)).toThrow(what)
  })
})
