import { DEFAULT_LIMITS, findHeadEnd, HeadRefusal, parseHead, type ParsedHead } from './parse-head.ts'

/**
 * The request-head contract shared by the case table, the llhttp differential and the fuzz seeds:
 * valid and hostile heads with the decision and fields the edge must give. Test support only.
 */

export interface Case {
  desc: string
  raw: string
  /** 'ok', or the status the client gets. */
  want: 'ok' | number
  fields?: Partial<Pick<ParsedHead, 'method' | 'path' | 'host' | 'contentLength' | 'chunked' | 'keepAlive' | 'upgrade' | 'minor'>>
  lines?: [string, string][]
  /**
   * We refuse what llhttp accepts: routing and policy rules llhttp leaves to its caller (Host, CONNECT,
   * versions, codings, target forms).
   */
  stricter?: true
}

export const H = 'GET / HTTP/1.1\r\nHost: a.test\r\n'

export const CASES: Case[] = [
  { desc: 'minimal GET', raw: `${H}\r\n`, want: 'ok', fields: { method: 'GET', path: '/', host: 'a.test', minor: 1, keepAlive: true, contentLength: -1, chunked: false } },
  { desc: 'HTTP/1.0 with Host closes by default', raw: 'GET /x HTTP/1.0\r\nHost: a\r\n\r\n', want: 'ok', fields: { minor: 0, keepAlive: false } },
  { desc: 'HTTP/1.0 keep-alive when asked', raw: 'GET /x HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n', want: 'ok', fields: { keepAlive: true } },
  { desc: 'HTTP/1.1 Connection: close', raw: `${H}Connection: close\r\n\r\n`, want: 'ok', fields: { keepAlive: false } },
  { desc: 'leading empty line is skipped', raw: `\r\n${H}\r\n`, want: 'ok', fields: { method: 'GET' } },
  { desc: 'query kept in the path', raw: 'GET /a/b?c=d&e HTTP/1.1\r\nHost: a\r\n\r\n', want: 'ok', fields: { path: '/a/b?c=d&e' } },
  { desc: 'duplicate lines kept in order', raw: `${H}X-A: 1\r\nx-a: 2\r\nX-B:3\r\n\r\n`, want: 'ok', lines: [['Host', 'a.test'], ['X-A', '1'], ['x-a', '2'], ['X-B', '3']] },
  { desc: 'OWS around values trimmed', raw: `${H}X-A: \t v \t\r\n\r\n`, want: 'ok', lines: [['Host', 'a.test'], ['X-A', 'v']] },
  { desc: 'empty value', raw: `${H}X-A:\r\n\r\n`, want: 'ok', lines: [['Host', 'a.test'], ['X-A', '']] },
  { desc: 'obs-text in a value', raw: `${H}X-A: caf\xe9\r\n\r\n`, want: 'ok', lines: [['Host', 'a.test'], ['X-A', 'caf\xe9']] },
  { desc: 'Content-Length', raw: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc', want: 'ok', fields: { contentLength: 3 } },
  { desc: 'chunked with extension and trailer', raw: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n', want: 'ok', fields: { chunked: true, contentLength: -1 } },
  { desc: 'Transfer-Encoding is case-insensitive', raw: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n', want: 'ok', fields: { chunked: true } },
  { desc: 'websocket upgrade', raw: `${H}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n`, want: 'ok', fields: { upgrade: true } },
  { desc: 'Upgrade without Connection: upgrade is no upgrade', raw: `${H}Upgrade: websocket\r\n\r\n`, want: 'ok', fields: { upgrade: false } },
  { desc: 'absolute-form: the authority wins over Host', raw: 'GET http://b.test:81/p?q HTTP/1.1\r\nHost: a.test\r\n\r\n', want: 'ok', fields: { host: 'b.test:81', path: '/p?q' } },
  { desc: 'absolute-form without a path', raw: 'GET http://b.test HTTP/1.1\r\nHost: a.test\r\n\r\n', want: 'ok', fields: { host: 'b.test', path: '/' } },
  { desc: 'OPTIONS *', raw: 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n', want: 'ok', fields: { path: '*' } },
  { desc: 'IPv6 Host', raw: 'GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n', want: 'ok', fields: { host: '[::1]:8080' } },
  { desc: 'extension method', raw: 'PURGE / HTTP/1.1\r\nHost: a\r\n\r\n', want: 'ok', fields: { method: 'PURGE' } },

  { desc: 'space before the colon', raw: `${H}Content-Length : 5\r\n\r\nhello`, want: 400 },
  { desc: 'tab before the colon', raw: `${H}X-A\t: 5\r\n\r\n`, want: 400 },
  { desc: 'CL and TE together', raw: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', want: 400 },
  { desc: 'differing Content-Length', raw: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd', want: 400 },
  { desc: 'repeated equal Content-Length', raw: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc', want: 400 },
  { desc: 'Content-Length list', raw: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc', want: 400 },
  { desc: 'signed Content-Length', raw: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc', want: 400 },
  { desc: 'hex Content-Length', raw: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc', want: 400 },
  { desc: 'empty Content-Length', raw: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n', want: 400 },
  { desc: 'obs-fold', raw: `${H}X-A: a\r\n b\r\n\r\n`, want: 400 },
  { desc: 'first header line starts with a space', raw: 'GET / HTTP/1.1\r\n Host: a\r\n\r\n', want: 400 },
  { desc: 'bare CR in a value', raw: `${H}X-A: a\rb\r\n\r\n`, want: 400 },
  { desc: 'bare LF ends a header line', raw: `${H}X-A: a\nX-B: b\r\n\r\n`, want: 400 },
  { desc: 'bare LF ends the request line', raw: 'GET / HTTP/1.1\nHost: a\r\n\r\n', want: 400 },
  { desc: 'LF-only head', raw: 'GET / HTTP/1.1\nHost: a\n\n', want: 400 },
  { desc: 'NUL in a value', raw: `${H}X-A: a\x00b\r\n\r\n`, want: 400 },
  { desc: 'DEL in a value', raw: `${H}X-A: a\x7fb\r\n\r\n`, want: 400 },
  { desc: 'NUL in a name', raw: `${H}X-\x00A: b\r\n\r\n`, want: 400 },
  { desc: 'separator in a name', raw: `${H}X(A): b\r\n\r\n`, want: 400 },
  { desc: 'empty header name', raw: `${H}: b\r\n\r\n`, want: 400 },
  { desc: 'header line without a colon', raw: `${H}X-A b\r\n\r\n`, want: 400 },
  { desc: 'two spaces after the method', raw: 'GET  / HTTP/1.1\r\nHost: a\r\n\r\n', want: 400, stricter: true },
  { desc: 'space in the target', raw: 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n', want: 400 },
  { desc: 'control character in the target', raw: 'GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n', want: 400 },
  { desc: 'lower-case version', raw: 'GET / http/1.1\r\nHost: a\r\n\r\n', want: 400 },
  { desc: 'no version (HTTP/0.9)', raw: 'GET /\r\nHost: a\r\n\r\n', want: 400, stricter: true },
  { desc: 'trailing space after the version', raw: 'GET / HTTP/1.1 \r\nHost: a\r\n\r\n', want: 400 },
  { desc: 'method is not a token', raw: 'G(T / HTTP/1.1\r\nHost: a\r\n\r\n', want: 400 },
  { desc: 'chunked with a bad chunk size is a body error, not a head error', raw: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', want: 'ok' },

  { desc: 'HTTP/1.1 without Host', raw: 'GET / HTTP/1.1\r\n\r\n', want: 400, stricter: true },
  { desc: 'HTTP/1.0 without Host', raw: 'GET / HTTP/1.0\r\n\r\n', want: 400, stricter: true },
  { desc: 'two Host headers', raw: 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', want: 400, stricter: true },
  { desc: 'Host with a path', raw: 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n', want: 400, stricter: true },
  { desc: 'Host with userinfo', raw: 'GET / HTTP/1.1\r\nHost: u@a\r\n\r\n', want: 400, stricter: true },
  { desc: 'empty Host', raw: 'GET / HTTP/1.1\r\nHost:\r\n\r\n', want: 400, stricter: true },
  { desc: 'CONNECT', raw: 'CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n', want: 501, stricter: true },
  { desc: 'HTTP/2.0 request line', raw: 'GET / HTTP/2.0\r\nHost: a\r\n\r\n', want: 505, stricter: true },
  { desc: 'HTTP/1.2', raw: 'GET / HTTP/1.2\r\nHost: a\r\n\r\n', want: 505 },
  { desc: 'gzip, chunked', raw: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', want: 501, stricter: true },
  { desc: 'chunked, chunked over two lines', raw: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', want: 501 },
  { desc: 'Transfer-Encoding not ending in chunked', raw: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n', want: 400 },
  { desc: 'TE on HTTP/1.0', raw: 'POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', want: 400, stricter: true },
  { desc: 'asterisk-form with GET', raw: 'GET * HTTP/1.1\r\nHost: a\r\n\r\n', want: 400, stricter: true },
  { desc: 'authority-form with GET', raw: 'GET a.test:80 HTTP/1.1\r\nHost: a\r\n\r\n', want: 400 },
  { desc: 'absolute-form with another scheme', raw: 'GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n', want: 400, stricter: true },
]

/** Our decision for a whole message: the head through findHeadEnd + parseHead. */
export function decide(raw: Uint8Array): { status: 'ok' | number; head?: ParsedHead; code?: string } {
  const buf = Buffer.from(raw)
  try {
    const end = findHeadEnd(buf, 0, buf.length, 0, DEFAULT_LIMITS)
    if (end === -1) return { status: 0 }
    return { status: 'ok', head: parseHead(buf, 0, end) }
  } catch (err) {
    if (err instanceof HeadRefusal) return { status: err.status, code: err.code }
    throw err
  }
}


