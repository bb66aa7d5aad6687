import { describe, expect, test } from 'bun:test'
import { compileMessage, evalCel, testExchange } from '../testing.ts'
import { dayOfYear } from './time.ts'

describe('timestamp and duration helpers (ngrok documented examples)', () => {
  test.each([
    { expr: "timestamp('2023-12-25T00:00:00Z').getDate()", want: 25n },
    { expr: "timestamp('2023-12-25T00:00:00Z').getDate('America/Los_Angeles')", want: 24n },
    { expr: "timestamp('2024-01-01T10:00:00Z').getDate('Asia/Tokyo')", want: 1n },
    { expr: "timestamp('2023-12-25T00:00:00Z').getDayOfMonth()", want: 24n },
    { expr: "timestamp('2023-12-25T00:00:00Z').getDayOfMonth('America/Los_Angeles')", want: 23n },
    { expr: "timestamp('2023-12-25T12:00:00Z').getDayOfWeek()", want: 1n },
    { expr: "timestamp('2023-12-25T12:00:00Z').getDayOfYear()", want: 358n },
    { expr: "timestamp('2023-07-04T12:00:00Z').getDayOfYear()", want: 184n, desc: 'in summer time too' },
    { expr: "timestamp('2024-01-01T03:00:00Z').getDayOfYear('America/New_York')", want: 364n },
    { expr: "timestamp('2023-12-25T12:00:00Z').getFullYear()", want: 2023n },
    { expr: "timestamp('2023-12-25T12:00:00Z').getHours()", want: 12n },
    { expr: "timestamp('2023-12-25T12:00:00.500Z').getMilliseconds()", want: 500n },
    { expr: "timestamp('2023-12-25T12:30:00Z').getMinutes()", want: 30n },
    { expr: "timestamp('2023-12-25T12:00:00Z').getMonth()", want: 11n },
    { expr: "timestamp('2023-12-25T12:30:30Z').getSeconds()", want: 30n },
    { expr: "duration('3h').getHours()", want: 3n },
    { expr: "duration('1h30m').getMinutes()", want: 90n },
    { expr: "duration('1m30s').getSeconds()", want: 90n },
    { expr: "timestamp('2024-01-01T00:00:00Z') + duration('1h') == timestamp('2024-01-01T01:00:00Z')", want: true },
    { expr: 'timestamp(time.now) >= conn.ts.start', want: true },
    { expr: "conn.ts.start > timestamp('2023-12-31T00:00:00Z')", want: true },
  ])('$expr', ({ expr, want }) => {
    expect(evalCel(expr, testExchange())).toEqual(want)
  })

  test('getDayOfYear() counts in UTC whatever the host time zone is', () => {
    const saved = process.env.TZ
    process.env.TZ = 'America/New_York'
    try {
      expect(dayOfYear(new Date('2023-07-04T12:00:00Z'))).toBe(184n)
      expect(evalCel("timestamp('2023-07-04T12:00:00Z').getDayOfYear()")).toBe(184n)
    } finally {
      if (saved === undefined) delete process.env.TZ
      else process.env.TZ = saved
    }
  })

  test.each([
    { expr: "timestamp('2023-12-25T12:00:00Z').getDayOfYear('Nowhere/Else')", error: /unknown time zone "Nowhere\/Else"/ },
    { expr: "timestamp('yesterday')", error: /ISO 8601/ },
  ])('run-time error: $expr', ({ expr, error }) => {
    expect(() => evalCel(expr)).toThrow(error)
  })

  test('getDayOfYear() on a duration is a load error naming getDayOfYear', () => {
    expect(compileMessage("duration('1h').getDayOfYear()")).toMatch(/no matching overload for 'google\.protobuf\.Duration\.getDayOfYear\(\)'/)
  })
})
