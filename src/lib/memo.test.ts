import { expect, test } from 'bun:test'
import { memoize } from './memo.ts'

test('memoize computes once per key, keeps undefined results, and empties itself at the limit', () => {
  const calls: string[] = []
  const f = memoize((k) => {
    calls.push(k)
    return k === 'none' ? undefined : k.length
  }, 3)
  expect([f('a'), f('bb'), f('a'), f('none'), f('none')]).toEqual([1, 2, 1, undefined, undefined])
  expect(calls).toEqual(['a', 'bb', 'none'])
  f('ccc') // the fourth key: the cache starts over
  f('a')
  expect(calls).toEqual(['a', 'bb', 'none', 'ccc', 'a'])
})
