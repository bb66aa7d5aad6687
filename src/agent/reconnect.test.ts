import { describe, expect, test } from 'bun:test'
import { backoffDelay } from './reconnect.ts'

describe('backoffDelay()', () => {
  test.each([
    { desc: 'first attempt, top of the jitter', attempt: 0, random: 1, want: 100 },
    { desc: 'first attempt, bottom of the jitter', attempt: 0, random: 0, want: 50 },
    { desc: 'doubles each attempt', attempt: 3, random: 1, want: 800 },
    { desc: 'capped at maxMs', attempt: 12, random: 1, want: 15_000 },
    { desc: 'never overflows', attempt: 5000, random: 1, want: 15_000 },
  ])('$desc', ({ attempt, random, want }) => {
    expect(backoffDelay(attempt, { random: () => random })).toBe(want)
  })

  test('jitter stays within 50-100 % of the step', () => {
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(4, { minMs: 10, maxMs: 1000 })
      expect(d).toBeGreaterThanOrEqual(80)
      expect(d).toBeLessThanOrEqual(160)
    }
  })

  test('reaches the edge again within 5 s of a ~3 s outage even at the worst jitter', () => {
    let total = 0
    let attempt = 0
    while (total < 3000) total += backoffDelay(attempt++, { random: () => 1 })
    expect(total).toBeLessThan(5000)
  })
})
