import { expect, test } from 'bun:test'
import { parseDuration } from './duration.ts'

test.each<[string, number | undefined]>([
  ['90s', 90_000],
  ['10m', 600_000],
  ['1h30m', 5_400_000],
  ['500ms', 500],
  ['1.5s', 1500],
  ['0', 0],
  ['', undefined],
  ['10', undefined],
  ['-1s', undefined],
  ['5d', undefined],
])('parseDuration(%p) → %p', (text, want) => expect(parseDuration(text)).toBe(want))
