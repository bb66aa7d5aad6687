import { describe, expect, test } from 'bun:test'
import { compileMessage, evalCel, testExchange } from '../testing.ts'
import { isQueryString, queryDecode, queryEncode } from './encoding.ts'

const bytes = (s: string) => new Uint8Array(Buffer.from(s))

describe('encoders and decoders', () => {
  test.each([
    { expr: "base64.decode('aGVsbG8=')", want: bytes('hello') },
    { expr: "base64.encode(b'hello')", want: 'aGVsbG8=' },
    { expr: "base64.encode('hello')", want: 'aGVsbG8=' },
    { expr: "'some:thing'.encodeBase64()", want: 'c29tZTp0aGluZw==' },
    { expr: "'c29tZTp0aGluZw=='.decodeBase64()", want: 'some:thing' },
    { expr: "basic_auth.encode('username', 'password1')", want: 'Basic dXNlcm5hbWU6cGFzc3dvcmQx' },
    { expr: "json.decode('{\"a\":\"b\"}')", want: { a: 'b' } },
    { expr: "json.decode('[\"a\",\"b\",\"c\"]')[2]", want: 'c' },
    { expr: "json.decode('{\"n\": 1}').n == 1", want: true },
    { expr: "'{\"a\":\"b\"}'.decodeJson().a", want: 'b' },
    { expr: "json.encode({'a': 'b'})", want: '{"a":"b"}' },
    { expr: "json.encode(['a', 1, true, null])", want: '["a",1,true,null]' },
    { expr: "['a','b','c'].encodeJson()", want: '["a","b","c"]' },
    { expr: "{'a': 'b', 'c': 'd'}.encodeJson()", want: '{"a":"b","c":"d"}' },
    { expr: 'json.encode(req.content_type.parameters)', want: '{"charset":"UTF-8"}' },
    { expr: 'json.encode(req.url)', want: '"https://api.example.com/p?q=hello"', desc: 'a string with fields encodes as its text' },
    { expr: "json.encode(timestamp('2024-01-02T03:04:05Z'))", want: '"2024-01-02T03:04:05Z"' },
    { expr: "'{\"a\":\"b\"}'.isJson() && !'not json'.isJson()", want: true },
    { expr: "queryString.decode('a=b&c=d')", want: { a: 'b', c: 'd' } },
    { expr: "queryString.decode(req.url.query)['q'] == 'hello'", want: true },
    { expr: "queryString.decode('a=1&a=2&b=x+y')", want: { a: ['1', '2'], b: 'x y' } },
    { expr: "'a=b&c=d'.decodeQueryString()", want: { a: 'b', c: 'd' } },
    { expr: "queryString.encode({'c': 'd', 'a': 'b'})", want: 'a=b&c=d' },
    { expr: "queryString.encode({'q': 'policy'}) == 'q=policy'", want: true },
    { expr: "{'a': ['1', '2'], 'b': 'x y'}.encodeQueryString()", want: 'a=1&a=2&b=x+y' },
    { expr: "'a=b&c=d'.isQueryString()", want: true },
    { expr: "'not a query string'.isQueryString()", want: false },
    { expr: "url.escape('i;md/r/$y')", want: 'i%3Bmd%2Fr%2F%24y' },
    { expr: "'i;md/r/$y'.escapeUrl()", want: 'i%3Bmd%2Fr%2F%24y' },
    { expr: "url.escape('a b!')", want: 'a+b%21' },
    { expr: "url.unescape('i%3Bmd%2Fr%2F%24y')", want: 'i;md/r/$y' },
    { expr: "url.unescape('%2Ffoo') == '/foo'", want: true },
    { expr: "'a+b%20c'.unescapeUrl()", want: 'a b c' },
    { expr: "url.parse('https://ngrok.com').host", want: 'ngrok.com' },
    { expr: "url.parse('https://u:p@ngrok.com:8443/a%20b?x=1#f')", want: { scheme: 'https', user: 'u:p', host: 'ngrok.com:8443', hostname: 'ngrok.com', port: '8443', path: '/a b', raw_query: 'x=1', fragment: 'f' } },
    { expr: "'/just/a/path?q=1'.parseUrl().path", want: '/just/a/path' },
    { expr: 'url.parse(req.url).host', want: 'api.example.com' },
    { expr: "'https://ngrok.com'.isURL()", want: true },
    { expr: "'not a url'.isURL()", want: false },
  ])('$expr', ({ expr, want }) => {
    const ex = testExchange({ url: '/p?q=hello', headers: { 'content-type': 'application/json; charset=UTF-8' } })
    expect(evalCel(expr, ex)).toEqual(want)
  })

  test.each([
    { expr: "base64.decode('aGVsbG8')", error: /is not valid base64/ },
    { expr: "json.decode('{nope')", error: /json\.decode: / },
    { expr: "url.unescape('%zz')", error: /invalid %-escape/ },
  ])('run-time error: $expr', ({ expr, error }) => {
    expect(() => evalCel(expr)).toThrow(error)
  })

  test.each([
    { expr: 'base64.decode(1)', error: /no matching overload/ },
    { expr: "json.decode('x', 'y')", error: /no matching overload/ },
    { expr: "queryString.encode('a=b')", error: /no matching overload/ },
    { expr: "url.nope('x')", error: /no matching overload/ },
  ])('load error: $expr', ({ expr, error }) => {
    expect(compileMessage(expr)).toMatch(error)
  })

  test('helpers', () => {
    expect(queryDecode('?x=1&y')).toEqual({ x: '1', y: '' })
    expect(queryEncode(new Map([['k', 'v w']]))).toBe('k=v+w')
    expect(isQueryString('a=%zz')).toBe(false)
  })
})
