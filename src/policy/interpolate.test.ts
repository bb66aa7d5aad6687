import { describe, expect, test } from 'bun:test'
import { WarrenError } from '../lib/errors.ts'
import { celContext } from './context.ts'
import { testExchange } from './expr/testing.ts'
import { compileTemplate, constantTemplate, type Template } from './interpolate.ts'

const PATH = ['on_http_request', 0, 'actions', 0, 'config', 'body'] as const

function template(text: string): Template {
  const tpl = compileTemplate(text, PATH)
  if (Array.isArray(tpl)) throw new Error(tpl.map((i) => i.message).join('; '))
  return tpl
}

const ex = testExchange({ url: '/p?q=1', client_ip: '198.51.100.4' }, { vars: { n: 3n, list: ['a', 'b'], map: { k: 'v' } } })
const context = () => celContext(ex)

describe('compileTemplate()', () => {
  test.each([
    { text: 'plain text', render: 'plain text', value: 'plain text' },
    { text: 'ip ${conn.client_ip}', render: 'ip 198.51.100.4', value: 'ip 198.51.100.4' },
    { text: '${conn.client_ip}', render: '198.51.100.4', value: '198.51.100.4' },
    { text: '${vars.n}', render: '3', value: 3n, desc: 'an int keeps its type' },
    { text: '${vars.n > 2}', render: 'true', value: true },
    { text: '${vars.list}', render: '["a","b"]', value: ['a', 'b'] },
    { text: '${vars.map}', render: '{"k":"v"}', value: { k: 'v' } },
    { text: '${req.url}', render: 'https://api.example.com/p?q=1', value: 'https://api.example.com/p?q=1' },
    { text: '${req.url.query_params}', render: '{"q":["1"]}', value: { q: ['1'] } },
    { text: '${conn.ts.start}', render: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/), value: expect.any(Date) },
    { text: "${'{' + '}'}", render: '{}', value: '{}', desc: 'braces inside CEL strings' },
    { text: 'a ${vars.n} b ${vars.n}', render: 'a 3 b 3', value: 'a 3 b 3' },
    { text: '${vars.n}${vars.n}', render: '33', value: '33', desc: 'two parts make a string' },
  ])('$text', ({ text, render, value }) => {
    const tpl = template(text)
    expect(tpl.constant).toBe(!text.includes('${'))
    expect(tpl.render(context)).toEqual(render)
    expect(tpl.renderValue(context)).toEqual(value)
  })

  test.each([
    { text: 'x ${req.method', error: /invalid template "x \$\{req.method": unclosed "\$\{" at offset 2/ },
    { text: '${req.nope}', error: /invalid expression "req.nope": No such key: nope \(at column 5\)/ },
    { text: '${1 +}', error: /invalid expression "1 \+": .*\(at column/ },
    { text: '${res.status_code}', error: /res is not available in on_http_request/ },
  ])('load error: $text', ({ text, error }) => {
    const tpl = compileTemplate(text, PATH)
    expect(Array.isArray(tpl)).toBe(true)
    expect((tpl as { message: string }[])[0]!.message).toMatch(error)
    expect((tpl as { code: string }[])[0]!.code).toBe('ERR_WARREN_2002')
  })

  test('a constant template never evaluates', () => {
    let called = false
    template('no vars').render(() => ((called = true), {}))
    expect(called).toBe(false)
    expect(constantTemplate('x').renderValue(() => ({}))).toBe('x')
  })

  test.each([
    { text: 'hello ${vars.missing}', method: 'render' },
    { text: '${vars.missing}', method: 'renderValue' },
  ] as const)('a failure at request time is a WarrenError 500 with code ERR_WARREN_3900 ($method)', ({ text, method }) => {
    let caught: unknown
    try {
      template(text)[method](context)
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(WarrenError)
    expect(caught).toMatchObject({ code: 'ERR_WARREN_3900', status: 500 })
    expect((caught as Error).message).toBe(
      'Cannot evaluate "${vars.missing}" in on_http_request[0].actions[0].config.body: No such key: missing (at column 6)',
    )
  })
})
