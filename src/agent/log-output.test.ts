import { describe, expect, test } from 'bun:test'
import { toLogfmt } from './log-output.ts'

describe('toLogfmt()', () => {
  test.each([
    { desc: 'plain fields', line: { ts: 'T', level: 'info', msg: 'started', n: 1 }, want: 't=T lvl=info msg=started n=1' },
    { desc: 'spaces are quoted', line: { ts: 'T', level: 'info', msg: 'Forwarding https://a -> http://b' }, want: 't=T lvl=info msg="Forwarding https://a -> http://b"' },
    { desc: 'quotes are escaped', line: { ts: 'T', level: 'warn', msg: 'x', error: 'say "hi"' }, want: 't=T lvl=warn msg=x error="say \\"hi\\""' },
    { desc: 'objects become JSON', line: { ts: 'T', level: 'info', msg: 'x', list: ['a', 'b'] }, want: 't=T lvl=info msg=x list="[\\"a\\",\\"b\\"]"' },
    { desc: 'empty strings are quoted', line: { ts: 'T', level: 'info', msg: 'x', v: '' }, want: 't=T lvl=info msg=x v=""' },
    { desc: 'equals signs are quoted', line: { ts: 'T', level: 'info', msg: 'a=b' }, want: 't=T lvl=info msg="a=b"' },
  ])('$desc', ({ line, want }) => {
    expect(toLogfmt(JSON.stringify(line))).toBe(want)
  })

  test('a line that is not JSON passes through', () => {
    expect(toLogfmt('not json')).toBe('not json')
  })
})
