import { describe, expect, test } from 'bun:test'
import { appendLine, carryLines, copyHeaders, linesOf, recordLines } from './header-lines.ts'

describe('header lines beside Headers', () => {
  test('recorded lines come back while the joined value is theirs', () => {
    const h = new Headers([['x-a', '1'], ['x-a', '2']])
    recordLines(h, 'x-a', ['1', '2'])
    expect(linesOf(h, 'x-a', h.get('x-a')!)).toEqual(['1', '2'])
  })

  test('a value a policy replaced is sent as set, not as the old lines', () => {
    const h = new Headers([['x-a', '1'], ['x-a', '2']])
    recordLines(h, 'x-a', ['1', '2'])
    h.set('x-a', 'new')
    expect(linesOf(h, 'x-a', h.get('x-a')!)).toBeUndefined()
  })

  test('appendLine() adds a line to an existing name, after the client\'s repeated ones', () => {
    const h = new Headers([['x-a', '1'], ['x-a', '2']])
    recordLines(h, 'x-a', ['1', '2'])
    appendLine(h, 'x-a', '3')
    appendLine(h, 'x-b', 'only')
    expect(linesOf(h, 'x-a', h.get('x-a')!)).toEqual(['1', '2', '3'])
    expect(linesOf(h, 'x-b', 'only')).toBeUndefined()
    expect(h.get('x-b')).toBe('only')
  })

  test('copyHeaders() keeps the lines; the copy changes alone', () => {
    const h = new Headers({ accept: 'a' })
    appendLine(h, 'accept', 'b')
    const copy = copyHeaders(h)
    expect(linesOf(copy, 'accept', copy.get('accept')!)).toEqual(['a', 'b'])
    copy.set('accept', 'c')
    expect(linesOf(h, 'accept', h.get('accept')!)).toEqual(['a', 'b'])
  })

  test('carryLines() gives a Response the lines of the Headers it was built from', () => {
    const h = new Headers({ 'x-tag': 'upstream' })
    appendLine(h, 'x-tag', 'edge')
    const res = new Response(null, { headers: h })
    expect(linesOf(res.headers, 'x-tag', res.headers.get('x-tag')!)).toBeUndefined()
    carryLines(h, res.headers)
    expect(linesOf(res.headers, 'x-tag', res.headers.get('x-tag')!)).toEqual(['upstream', 'edge'])
  })
})
