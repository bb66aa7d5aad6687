import { describe, expect, test } from 'bun:test'
import { parseSource } from './document.ts'

describe('parseSource() positions', () => {
  test.each([
    { desc: 'unclosed [ at the end of the file', text: 'a:\n  b: [1, 2\n', line: 2, col: 11 },
    { desc: 'unclosed [ before blank lines', text: 'a:\n  b: [1, 2\n\n\n', line: 2, col: 11 },
    { desc: 'unclosed [ before the next key', text: 'a:\n  b: [1, 2\nc: 3\n', line: 2, col: 11 },
    { desc: 'unclosed {', text: 'a: {x: 1\n', line: 1, col: 9 },
    { desc: 'a policy rule', text: 'on_http_request:\n  - actions: [{type: deny}\n', line: 2, col: 27 },
    { desc: 'other errors keep their place', text: 'a: 1\na: 2\n', line: 2, col: 1 },
  ])('$desc: reported at $line:$col', ({ text, line, col }) => {
    const parsed = parseSource(text)
    expect('errors' in parsed && parsed.errors[0]).toMatchObject({ line, col })
  })
})
