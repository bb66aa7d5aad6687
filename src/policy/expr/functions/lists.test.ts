import { describe, expect, test } from 'bun:test'
import { compileMessage, evalCel, testExchange } from '../testing.ts'

describe('list and map functions and macros', () => {
  test.each([
    { expr: '[1, 2, 3].all(x, x > 0)', want: true },
    { expr: '[1, -2, 3].exists(x, x > 0)', want: true },
    { expr: '[1, 2, 3].exists_one(x, x == 2)', want: true },
    { expr: '[1, 2, 3].filter(x, x > 1)', want: [2n, 3n] },
    { expr: '[1, 2, 3].map(n, n * n)', want: [1n, 4n, 9n] },
    { expr: '[1, 2, 3, 4].map(num, num % 2 == 0, num * 2)', want: [4n, 8n] },
    { expr: "['hello', 'world'].size() == 2 && size(['hello', 'world']) == 2", want: true },
    { expr: '[1, 2, 3, 4].slice(1, 3)', want: [2n, 3n] },
    { expr: '[1, 2, 3, 4].slice(2, 4)', want: [3n, 4n] },
    { expr: '[1, [2, 3], [4]].flatten()', want: [1n, 2n, 3n, 4n] },
    { expr: '[1, [2, [3, 4]]].flatten()', want: [1n, 2n, [3n, 4n]] },
    { expr: '[1, 2, [], [], [3, 4]].flatten()', want: [1n, 2n, 3n, 4n] },
    { expr: '[1, [2, [3, [4]]]].flatten(2)', want: [1n, 2n, 3n, [4n]] },
    { expr: '[3, 2, 1].sort()', want: [1n, 2n, 3n] },
    { expr: "['b', 'c', 'a'].sort()", want: ['a', 'b', 'c'] },
    { expr: "[{'n': 'foo', 's': 0}, {'n': 'bar', 's': -10}, {'n': 'baz', 's': 1000}].sortBy(e, e.s).map(e, e.n)", want: ['bar', 'foo', 'baz'] },
    { expr: '[1, 2, 2, 3, 3, 3].distinct()', want: [1n, 2n, 3n] },
    { expr: "['b', 'b', 'c', 'a', 'c'].distinct()", want: ['b', 'c', 'a'] },
    { expr: "[1, 'b', 2, 'b'].distinct()", want: [1n, 'b', 2n] },
    { expr: 'lists.range(5)', want: [0n, 1n, 2n, 3n, 4n] },
    { expr: "{'one': 1, 'two': 2}.all(x, x.startsWith('o'))", want: false },
    { expr: "{'one': 1, 'two': 2}.exists(x, x.startsWith('o'))", want: true },
    { expr: "{'one': 1, 'two': 2}.exists_one(x, x == 'one')", want: true },
    { expr: "{'one': 1, 'two': 2}.filter(x, x.startsWith('o'))", want: ['one'] },
    { expr: "{'one': 1, 'two': 2}.map(k, k)", want: ['one', 'two'] },
    { expr: "{'one': 1, 'two': 2, 'three': 3}.map(k, k.startsWith('t'), k.upper())", want: ['TWO', 'THREE'] },
    { expr: "{'hello': 'world'}.size() == 1 && size({1: true, 2: false}) == 2", want: true },
    { expr: "req.headers.exists(h, h.startsWith('x-'))", want: true },
    { expr: 'vars.names.sort()', want: ['a', 'z'] },
    { expr: "cel.bind(p, req.url.path, p.startsWith('/') && p.size() > 1)", want: true },
  ])('$expr', ({ expr, want }) => {
    const ex = testExchange({ url: '/x', headers: { 'x-a': '1' } }, { vars: { names: ['z', 'a'] } })
    expect(evalCel(expr, ex)).toEqual(want)
  })

  test.each([
    { expr: '[1, 2].slice(1, 3)', error: /past the list size/ },
    { expr: '[1, 2].slice(2, 1)', error: /start is after end/ },
    { expr: '[1, [2, [3, [4]]]].flatten(-1)', error: /must not be negative/ },
    { expr: "[1, 'b'].sort()", error: /mixes types/ },
    { expr: '[[1, 2, 3]].sort()', error: /not comparable/ },
    { expr: 'lists.range(-1)', error: /must not be negative/ },
  ])('run-time error: $expr', ({ expr, error }) => {
    expect(() => evalCel(expr)).toThrow(error)
  })

  test.each([
    { expr: "'abc'.sortBy(e, e)", error: /sortBy\(\) needs a list/ },
    { expr: '[1].sortBy(1, 2)', error: /needs a variable name/ },
    { expr: '[1].sortBy(e, nope)', error: /Unknown variable: nope/ },
    { expr: "[1].slice('a', 2)", error: /no matching overload/ },
  ])('load error: $expr', ({ expr, error }) => {
    expect(compileMessage(expr)).toMatch(error)
  })
})
