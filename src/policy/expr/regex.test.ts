import { describe, expect, test } from 'bun:test'
import { re2, translateRe2 } from './regex.ts'

describe('translateRe2()', () => {
  test.each([
    { desc: 'plain pattern', re2: '^/api/v[0-9]+', source: '^/api/v[0-9]+', flags: '' },
    { desc: 'leading (?i)', re2: '(?i)googlebot', source: 'googlebot', flags: 'i' },
    { desc: 'leading (?is)', re2: '(?is)a.b', source: 'a.b', flags: 'is' },
    { desc: 'mid-pattern flag becomes a modifier group', re2: 'a(?i)b', source: 'a(?i:b)', flags: '' },
    { desc: 'mid-pattern flag inside a group', re2: '(x(?i)y)z', source: '(x(?i:y))z', flags: '' },
    { desc: 'mid-pattern flag across |', re2: 'a(?i)b|c', source: 'a(?i:b)|(?i:c)', flags: '' },
    { desc: 'named group', re2: '(?P<id>\\d+)', source: '(?<id>\\d+)', flags: '' },
    { desc: '\\A and \\z', re2: '\\Aabc\\z', source: '(?<![\\s\\S])abc(?![\\s\\S])', flags: '' },
    { desc: '\\Q…\\E quotes', re2: '\\Qa.b*\\E', source: 'a\\.b\\*', flags: '' },
    { desc: 'POSIX class', re2: '[[:digit:][:upper:]]+', source: '[0-9A-Z]+', flags: '' },
    { desc: '] first in a class is literal', re2: '[]a]', source: '[\\]a]', flags: '' },
  ])('$desc', ({ re2: pattern, source, flags }) => {
    expect(translateRe2(pattern)).toEqual({ source, flags })
  })

  test.each([
    { desc: 'ungreedy flag', re2: '(?U)a+', error: /ungreedy/ },
    { desc: 'unknown POSIX class', re2: '[[:nope:]]', error: /unknown POSIX class/ },
    { desc: 'unclosed group', re2: '(a', error: /missing closing \)/ },
    { desc: 'unbalanced )', re2: 'a)', error: /unexpected \)/ },
    { desc: 'unclosed class', re2: '[a', error: /missing closing \]/ },
  ])('rejects $desc', ({ re2: pattern, error }) => {
    expect(() => translateRe2(pattern)).toThrow(error)
  })
})

describe('re2() matches like Go regexp', () => {
  test.each([
    { re2: '(?i)GOOGLE-images', text: 'google-Images bot', want: true },
    { re2: '^/api', text: '/web/api', want: false },
    { re2: 'a(?i)b', text: 'aB', want: true },
    { re2: 'a(?i)b', text: 'AB', want: false },
    { re2: '\\Afoo\\z', text: 'foo', want: true },
    { re2: '\\Afoo\\z', text: 'foo\n', want: false },
    { re2: '(?P<v>v\\d)', text: 'api/v2', want: true },
  ])('$re2 on "$text" → $want', ({ re2: pattern, text, want }) => {
    expect(re2(pattern).test(text)).toBe(want)
  })

  test('caches compiled patterns', () => {
    expect(re2('^cached$')).toBe(re2('^cached$'))
  })

  test('throws SyntaxError naming the pattern', () => {
    expect(() => re2('(')).toThrow(/invalid regular expression "\("/)
  })
})
