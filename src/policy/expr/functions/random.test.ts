import { describe, expect, test } from 'bun:test'
import { compileMessage, evalCel } from '../testing.ts'
import { randomInt } from './random.ts'

describe('rand.*', () => {
  test('rand.double() is in [0, 1)', () => {
    for (let i = 0; i < 200; i++) {
      const d = evalCel('rand.double()') as number
      expect(d).toBeGreaterThanOrEqual(0)
      expect(d).toBeLessThan(1)
    }
  })

  test.each<{ expr: string; values: bigint[] }>([
    { expr: 'rand.int()', values: [0n, 1n] },
    { expr: 'rand.int(0, 10)', values: Array.from({ length: 11 }, (_v, i) => BigInt(i)) },
    { expr: 'rand.int(5, 5)', values: [5n] },
  ])('$expr stays in range and reaches both ends', ({ expr, values }) => {
    const seen = new Set<bigint>()
    for (let i = 0; i < 2000; i++) seen.add(evalCel(expr) as bigint)
    expect([...seen].every((v) => values.includes(v))).toBe(true)
    expect(seen.has(values[0]!) && seen.has(values[values.length - 1]!)).toBe(true)
  })

  test.each([
    { expr: 'rand.int(-1, 3)', error: /must not be negative/ },
    { expr: 'rand.int(5, 1)', error: /max is less than min/ },
  ])('run-time error: $expr', ({ expr, error }) => {
    expect(() => evalCel(expr)).toThrow(error)
  })

  test('rand.int(1) does not exist', () => {
    expect(compileMessage('rand.int(1)')).toMatch(/no matching overload/)
  })

  test('ranges wider than 2^53', () => {
    const v = randomInt(0n, 2n ** 62n)
    expect(v >= 0n && v <= 2n ** 62n).toBe(true)
  })
})
