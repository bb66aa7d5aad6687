import { describe, expect, test } from 'bun:test'
import { MAX_TIMER_MS, renewAt, retryDelay } from './schedule.ts'

const DAY = 24 * 60 * 60 * 1000

describe('renewAt()', () => {
  const from = new Date('2025-01-01T00:00:00Z')
  test.each([
    { desc: '90 days, no jitter: day 60', days: 90, random: 0, want: from.getTime() + 60 * DAY },
    { desc: '90 days, full jitter: 6 h earlier (the cap)', days: 90, random: 1, want: from.getTime() + 60 * DAY - 6 * 60 * 60 * 1000 },
    { desc: '3 days, full jitter: 5% of the lifetime earlier (under the cap)', days: 3, random: 1, want: from.getTime() + 2 * DAY - 0.05 * 3 * DAY },
    { desc: 'random outside 0..1 is clamped', days: 90, random: 7, want: from.getTime() + 60 * DAY - 6 * 60 * 60 * 1000 },
  ])('$desc', ({ days, random, want }) => {
    expect(renewAt(from, new Date(from.getTime() + days * DAY), random).getTime()).toBeCloseTo(want, -1)
  })

  test('a 6-second certificate renews after about 4 seconds', () => {
    const at = renewAt(new Date(0), new Date(6000), 0.5).getTime()
    expect(at).toBeGreaterThan(3800)
    expect(at).toBeLessThanOrEqual(4000)
  })

  test('notAfter before notBefore renews at once (at notBefore)', () => {
    expect(renewAt(new Date(1000), new Date(0), 0).getTime()).toBe(1000)
  })
})

describe('retryDelay()', () => {
  const opts = { minMs: 60_000, maxMs: 3_600_000 }
  test.each([
    { desc: 'first failure waits min', failures: 1, want: 60_000 },
    { desc: 'doubles per failure', failures: 2, want: 120_000 },
    { desc: 'third failure', failures: 3, want: 240_000 },
    { desc: 'capped at max', failures: 30, want: 3_600_000 },
    { desc: 'huge counts do not overflow', failures: 10_000, want: 3_600_000 },
  ])('$desc', ({ failures, want }) => {
    expect(retryDelay(failures, opts, 0.5)).toBe(want)
  })

  test('jitter stays within ±10% and inside [min, max]', () => {
    expect(retryDelay(2, opts, 0)).toBe(108_000)
    expect(retryDelay(2, opts, 1)).toBe(132_000)
    expect(retryDelay(1, opts, 0)).toBe(60_000)
    expect(retryDelay(30, opts, 1)).toBe(3_600_000)
  })
})

test('MAX_TIMER_MS is the largest delay setTimeout honours', () => {
  expect(MAX_TIMER_MS).toBe(2147483647)
})
