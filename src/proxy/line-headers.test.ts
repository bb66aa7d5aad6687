import { describe, expect, test } from 'bun:test'
import { LineHeaders } from './line-headers.ts'

/** What a Headers-like object answers to every read, errors included, for comparison. */
function reads(h: Headers, names: readonly string[]): unknown[] {
  const out: unknown[] = []
  const attempt = (f: () => unknown) => {
    try {
      out.push(f())
    } catch (err) {
      out.push(`throws ${(err as Error).name}`)
    }
  }
  for (const name of names) {
    attempt(() => h.get(name))
    attempt(() => h.has(name))
  }
  attempt(() => h.getSetCookie())
  const each: string[] = []
  h.forEach((value, name) => each.push(`${name}=${value}`))
  out.push(each, [...h], h.count, h.toJSON())
  return out
}

const NAMES = ['Host', 'x-a', 'X-A', 'set-cookie', 'Cookie', 'Accept', 'x-b', 'bad name', '', 'ü']
const VALUES = ['1', 'two words', ' padded\t', 'é', '日本', 'a\r\nb', 'x\0y', '']

/** A small deterministic generator: the same sequences on every run. */
function random(seed: number): () => number {
  let s = seed
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648
  }
}

describe('LineHeaders', () => {
  test('answers every read as Headers does over 2000 random edit sequences, errors included', () => {
    const next = random(7)
    const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!
    for (let run = 0; run < 2000; run++) {
      const start: [string, string][] = Array.from({ length: Math.floor(next() * 4) }, () => [pick(['Host', 'X-A', 'x-a', 'Set-Cookie', 'Cookie', 'cookie', 'Accept']), pick(['1', 'v w', 'é'])])
      const real = new Headers()
      for (const [n, v] of start) real.append(n, v)
      const lines = new LineHeaders(
        start.map(([n]) => n),
        start.map(([, v]) => v),
      )
      const ops: string[] = []
      for (let k = 0; k < 5; k++) {
        const [op, name, value] = [pick(['append', 'set', 'delete']), pick(NAMES), pick(VALUES)]
        ops.push(`${op} ${JSON.stringify(name)} ${JSON.stringify(value)}`)
        const apply = (h: Headers) => {
          try {
            if (op === 'append') h.append(name, value)
            else if (op === 'set') h.set(name, value)
            else h.delete(name)
            return 'ok'
          } catch (err) {
            return (err as Error).name
          }
        }
        expect([ops, apply(lines)]).toEqual([ops, apply(real)])
      }
      expect([start, ops, reads(lines, NAMES)]).toEqual([start, ops, reads(real, NAMES)])
    }
  })

  test('keeps every line apart and in order: an appended value is a line of its own after the others', () => {
    const h = new LineHeaders(['Host', 'X-Multi', 'Accept', 'x-multi'], ['a.example', 'one', '*/*', 'two'])
    h.append('X-Multi', 'three')
    h.append('x-new', 'n')
    h.delete('accept')
    expect(h.get('x-multi')).toBe('one, two, three')
    expect(h.lines()).toEqual([
      ['Host', 'a.example'],
      ['X-Multi', 'one'],
      ['x-multi', 'two'],
      ['x-multi', 'three'],
      ['x-new', 'n'],
    ])
    h.set('x-multi', 'only')
    expect(h.lines()).toEqual([
      ['Host', 'a.example'],
      ['X-Multi', 'only'],
      ['x-new', 'n'],
    ])
  })
})
