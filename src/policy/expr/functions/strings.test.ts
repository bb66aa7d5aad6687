import { describe, expect, test } from 'bun:test'
import { compileMessage, evalCel, testExchange } from '../testing.ts'
import { format, quote } from './strings.ts'

describe('string functions (ngrok macros and the CEL standard library)', () => {
  test.each([
    { expr: "'Ärger ÉCOLE'.lower()", want: 'ärger école' },
    { expr: "'Ärger école'.upper()", want: 'ÄRGER ÉCOLE' },
    { expr: "'TacoCÆt'.lowerAscii()", want: 'tacocæt' },
    { expr: "'  \\ttrim\\n  '.trim()", want: 'trim' },
    { expr: "'hello mellow'.split()", want: ['hello', 'mellow'] },
    { expr: "'  a  b '.split()", want: ['a', 'b'] },
    { expr: "'hello,mellow,hi'.split(',')", want: ['hello', 'mellow', 'hi'] },
    { expr: "'hello,mellow,hi'.split(',', 2)", want: ['hello', 'mellow,hi'] },
    { expr: "'hello mellow'.replace('l', 'L')", want: 'heLLo meLLow' },
    { expr: "'hello mellow'.replace('l', 'L', 2)", want: 'heLLo mellow' },
    { expr: "'hello mellow'.replace('x', 'X')", want: 'hello mellow' },
    { expr: "'ab'.replace('', '-')", want: '-a-b-' },
    { expr: "'ab'.replace('', '-', 2)", want: '-a-b' },
    { expr: "'hello'.charAt(4)", want: 'o' },
    { expr: "'hello'.charAt(5)", want: '' },
    { expr: "'héllo'.charAt(1)", want: 'é' },
    { expr: "'gums'.reverse()", want: 'smug' },
    { expr: "'hello %s'.format(['world'])", want: 'hello world' },
    { expr: "'integer: %d'.format([42])", want: 'integer: 42' },
    { expr: "'%f'.format([3.14])", want: '3.140000' },
    { expr: "'%.2f'.format([3.14159])", want: '3.14' },
    { expr: "'%e'.format([1234.5])", want: '1.234500e+03' },
    { expr: "'%x %X %o'.format([26, 255, 8])", want: '1a FF 10' },
    { expr: "'binary: %b'.format([5])", want: 'binary: 101' },
    { expr: "'bool: %b'.format([true])", want: 'bool: 1' },
    { expr: "'100%% %s'.format([req.method])", want: '100% GET' },
    { expr: "strings.quote('single-quote with \"double quote\"')", want: '"single-quote with \\"double quote\\""' },
    { expr: "'hello mellow'.indexOf('ello')", want: 1n },
    { expr: "'hello mellow'.lastIndexOf('ello')", want: 7n },
    { expr: "'tacocat'.substring(4)", want: 'cat' },
    { expr: "'tacocat'.substring(0, 4)", want: 'taco' },
    { expr: "'hello world'.contains('world')", want: true },
    { expr: "'foobar'.startsWith('foo') && 'foobar'.endsWith('bar')", want: true },
    { expr: "size('héllo') == 5 && 'héllo'.size() == 5", want: true },
    { expr: "['hello', 'mellow'].join(' ')", want: 'hello mellow' },
    { expr: "[].join('/')", want: '' },
  ])('$expr', ({ expr, want }) => {
    expect(evalCel(expr)).toEqual(want)
  })

  test.each([
    { expr: "'foobar'.matches('foo.*')", want: true },
    { expr: "matches('foobar', 'foo.*')", want: true },
    { expr: "matches('test', 'fail')", want: false },
    { expr: "'Google-Images'.matches('(?i)google-images')", want: true, desc: 'RE2 leading flag' },
    { expr: "getReqHeader('user-agent').exists(v, v.matches('(?i)^curl/'))", want: true },
    { expr: "'a1'.matches('^[[:alpha:]][[:digit:]]$')", want: true, desc: 'POSIX classes' },
    { expr: "req.url.path.matches(vars.pattern)", want: true, desc: 'a pattern from a variable' },
  ])('matches: $expr → $want', ({ expr, want }) => {
    const ex = testExchange({ url: '/api/v2', headers: { 'user-agent': 'curl/8.5.0' } }, { vars: { pattern: '(?i)^/API/V\\d$' } })
    expect(evalCel(expr, ex)).toBe(want)
  })

  test.each([
    { expr: "'x'.matches('(?U)x+')", error: /invalid regular expression "\(\?U\)x\+": the ungreedy flag .* \(at column 13\)/ },
    { expr: "matches('x', '[')", error: /invalid regular expression "\[".*\(at column 14\)/ },
    { expr: "1.matches('x')", error: /no matching overload for 'int\.matches\(string\)'/ },
    { expr: "'x'.lower(1)", error: /no matching overload/ },
    { expr: "'x'.replace('a')", error: /no matching overload/ },
    { expr: "'%d'.format('x')", error: /no matching overload/ },
  ])('load error: $expr', ({ expr, error }) => {
    expect(compileMessage(expr)).toMatch(error)
  })

  test.each([
    { expr: "'hello'.charAt(6)", error: /charAt: index 6 out of range/ },
    { expr: "'hello'.charAt(-1)", error: /out of range/ },
    { expr: "'%d'.format(['x'])", error: /%d needs an integer/ },
    { expr: "'%s %s'.format(['x'])", error: /not enough arguments/ },
    { expr: "'x'.matches(vars.bad)", error: /invalid regular expression/ },
  ])('run-time error: $expr', ({ expr, error }) => {
    expect(() => evalCel(expr, testExchange({}, { vars: { bad: '(' } }))).toThrow(error)
  })

  test('format() and quote() directly', () => {
    expect(format('%s=%d', ['a', 1n])).toBe('a=1')
    expect(quote('two escape sequences \x07\n')).toBe('"two escape sequences \\a\\n"')
    expect(quote('\x01')).toBe('"\\x01"')
  })
})
