import { describe, expect, test } from 'bun:test'
import { CODES } from '../lib/errors.ts'
import { RequestHead } from './head.ts'
import { hasNode, llhttp } from './llhttp-reference.ts'
import { DEFAULT_LIMITS, findHeadEnd, HeadRefusal } from './parse-head.ts'
import { CASES, decide, H } from './parse-head.cases.ts'

const bytes = (s: string) => Buffer.from(s, 'latin1')

describe('parseHead()', () => {
  test.each(CASES.map((c) => [c.desc, c] as const))('%s', (_desc, c) => {
    const got = decide(bytes(c.raw))
    expect(got.status).toBe(c.want)
    if (got.status !== 'ok') expect(Object.values(CODES)).toContain(got.code as (typeof CODES)[keyof typeof CODES])
    if (c.fields) expect(got.head).toMatchObject(c.fields)
    if (c.lines) expect(new RequestHead(got.head!).lines()).toEqual(c.lines)
  })

  test('a head arriving byte by byte is found once, at its end', () => {
    const raw = bytes(`${H}X-A: 1\r\n\r\nrest`)
    let scanned = 0
    let end = -1
    for (let n = 1; n <= raw.length && end === -1; n++) {
      end = findHeadEnd(raw.subarray(0, n), 0, n, scanned, DEFAULT_LIMITS)
      scanned = n
    }
    expect(end).toBe(raw.length - 4)
  })

  test('a head over the limit is refused with 431 before its end arrives', () => {
    const raw = bytes(`${H}X-A: ${'a'.repeat(20 * 1024)}`)
    expect(() => findHeadEnd(raw, 0, raw.length, 0, DEFAULT_LIMITS)).toThrow(HeadRefusal)
    expect(decide(raw)).toMatchObject({ status: 431, code: CODES.HEADERS_TOO_LARGE })
  })

  test('more header lines than the limit get 431', () => {
    const raw = bytes(`${H}${'X: 1\r\n'.repeat(DEFAULT_LIMITS.maxHeaders)}\r\n`)
    expect(decide(raw)).toMatchObject({ status: 431, code: CODES.HEADERS_TOO_LARGE })
  })

  test('toHeaders() drops hop-by-hop lines and those Connection names', () => {
    const head = decide(bytes(`${H}Connection: x-forwarded-for, X-Drop\r\nX-Drop: 1\r\nX-Forwarded-For: 6.6.6.6\r\nKeep-Alive: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\n`)).head!
    const headers = new RequestHead(head).toHeaders()
    expect([...headers.keys()].sort()).toEqual(['host', 'x-a'])
    expect(headers.get('x-a')).toBe('1, 2')
  })
})

describe.skipIf(!hasNode())('parseHead() against llhttp', () => {
  test('every case: same decision (or a documented stricter one) and the same fields', async () => {
    const ref = await llhttp(CASES.map((c) => bytes(c.raw)))
    const differences: string[] = []
    CASES.forEach((c, k) => {
      const r = ref[k]!
      const ours = decide(bytes(c.raw))
      const label = `${c.desc}: llhttp ${r.ok ? 'accepts' : `refuses (${r.error})`}, we ${ours.status}`
      if (c.stricter ? !r.ok : (ours.status === 'ok') !== r.ok) differences.push(label)
      if (ours.status !== 'ok' || !r.ok) return
      const head = ours.head!
      const mine = { method: head.method, url: head.target, minor: head.minor, keepAlive: head.keepAlive, headers: new RequestHead(head).lines().flat() }
      const theirs = { method: r.method, url: r.url, minor: r.minor, keepAlive: r.keepAlive, headers: r.headers }
      if (JSON.stringify(mine) !== JSON.stringify(theirs)) differences.push(`${c.desc}: ${JSON.stringify(mine)} vs llhttp ${JSON.stringify(theirs)}`)
    })
    expect(differences).toEqual([])
  })
})
