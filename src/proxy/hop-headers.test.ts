import { describe, expect, test } from 'bun:test'
import { dropConnectionListed, stripHopHeaders } from './hop-headers.ts'

const names = (h: Headers) => [...h.keys()].sort()

describe('dropConnectionListed()', () => {
  const base = { host: 'a.example', 'x-a': '1', 'x-b': '2', 'x-c': '3' }
  test.each([
    { desc: 'drops the fields Connection names', headers: { connection: 'x-a, X-B' }, want: ['connection', 'host', 'x-c'] },
    { desc: 'keeps Host and Content-Length (routing, framing)', headers: { connection: 'host, content-length', 'content-length': '3' }, want: ['connection', 'content-length', 'host', 'x-a', 'x-b', 'x-c'] },
    { desc: 'keeps hop-by-hop fields for stripHopHeaders (a websocket Upgrade)', headers: { connection: 'upgrade, keep-alive', upgrade: 'websocket', 'keep-alive': 'timeout=5' }, want: ['connection', 'host', 'keep-alive', 'upgrade', 'x-a', 'x-b', 'x-c'] },
    { desc: 'ignores what is not a field name instead of throwing', headers: { connection: 'x a, , "x-b", x-c' }, want: ['connection', 'host', 'x-a', 'x-b'] },
  ])('$desc', ({ headers, want }) => {
    const h = new Headers({ ...base, ...headers })
    dropConnectionListed(h)
    expect(names(h)).toEqual([...want])
  })

  test('a field the edge sets afterwards survives: stripHopHeaders does not read Connection again', () => {
    const h = new Headers({ connection: 'x-forwarded-for, x-policy-added', 'x-forwarded-for': '6.6.6.6', host: 'a.example' })
    dropConnectionListed(h)
    expect(h.has('x-forwarded-for')).toBe(false)
    h.set('x-forwarded-for', '127.0.0.1')
    h.set('x-policy-added', 'yes')
    stripHopHeaders(h)
    expect(Object.fromEntries(h)).toEqual({ host: 'a.example', 'x-forwarded-for': '127.0.0.1', 'x-policy-added': 'yes' })
  })
})
