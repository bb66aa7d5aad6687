import { describe, expect, test } from 'bun:test'
import { Cookie, parseCookieHeader, parseSetCookie, parseSetCookies } from './cookies.ts'

describe('parseCookieHeader()', () => {
  test.each<{ header: string; want: Record<string, string[]>; desc?: string }>([
    { header: 'a=1; b=2', want: { a: ['1'], b: ['2'] } },
    { header: 'a=1;a=2', want: { a: ['1', '2'] }, desc: 'same name twice, header order' },
    { header: 'q="quoted"; flag', want: { q: ['quoted'], flag: [''] } },
    { header: ' ; =x; ok=1', want: { ok: ['1'] } },
  ])('$header', ({ header, want }) => {
    const got = parseCookieHeader([header])
    expect(Object.fromEntries(Object.entries(got).map(([k, v]) => [k, v.map((c) => c.value)]))).toEqual(want)
    for (const [k, list] of Object.entries(got)) for (const c of list) expect(c).toMatchObject({ name: k, path: '', secure: false })
  })
})

describe('parseSetCookie()', () => {
  test('reads every attribute', () => {
    const c = parseSetCookie('id=a%20b; Path=/x; Domain=.example.com; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Max-Age=60; Secure; HttpOnly; SameSite=None; Partitioned; Priority=High')
    expect(c).toBeInstanceOf(Cookie)
    expect(c).toMatchObject({ name: 'id', value: 'a b', path: '/x', domain: 'example.com', secure: true, http_only: true, same_site: 'None' })
    expect(c!.expires).toEqual(new Date('2026-10-21T07:28:00Z'))
    expect(c!.max_age?.seconds).toBe(60n)
    expect(c!.unparsed_attributes).toEqual({ Partitioned: '', Priority: 'High' })
  })

  test.each(['', '=x', 'noequals'])('no cookie in %j', (text) => {
    expect(parseSetCookie(text)).toBeUndefined()
  })

  test('several of one name: longest path first', () => {
    expect(parseSetCookies(['a=1; Path=/', 'a=2; Path=/deep/path', 'a=3; Path=/deep']).a!.map((c) => c.value)).toEqual(['2', '3', '1'])
  })
})
