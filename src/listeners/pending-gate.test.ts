import { describe, expect, test } from 'bun:test'
import { PendingGate, sourceKey } from './pending-gate.ts'

describe('PendingGate', () => {
  test('refuses past the per-source cap, counts sources apart, and admits again after a release', () => {
    const gate = new PendingGate({ perSource: 2, total: 10 })
    expect([gate.admit('10.0.0.1'), gate.admit('10.0.0.1'), gate.admit('10.0.0.1')]).toEqual([true, true, false])
    expect(gate.admit('10.0.0.2')).toBe(true)
    expect(gate.pending).toBe(3)
    gate.release('10.0.0.1')
    expect(gate.admit('10.0.0.1')).toBe(true)
    expect(gate.admit('10.0.0.1')).toBe(false)
  })

  test('refuses past the total cap whatever the source', () => {
    const gate = new PendingGate({ perSource: 5, total: 3 })
    expect(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'].map((a) => gate.admit(a))).toEqual([true, true, true, false])
    gate.release('10.0.0.2')
    expect(gate.admit('10.0.0.4')).toBe(true)
    expect(gate.pending).toBe(3)
  })

  test('a release for a source with nothing pending changes nothing', () => {
    const gate = new PendingGate({ perSource: 1, total: 1 })
    gate.release('10.0.0.9')
    expect(gate.pending).toBe(0)
    expect(gate.admit('10.0.0.9')).toBe(true)
  })
})

describe('sourceKey()', () => {
  test.each([
    { desc: 'IPv4 as is', a: '192.0.2.7', b: '192.0.2.7', same: true },
    { desc: 'IPv4-mapped IPv6 is its IPv4', a: '::ffff:192.0.2.7', b: '192.0.2.7', same: true },
    { desc: 'IPv4-mapped IPv6 in hex too', a: '::ffff:c000:207', b: '192.0.2.7', same: true },
    { desc: 'two IPv4 addresses differ', a: '192.0.2.7', b: '192.0.2.8', same: false },
    { desc: 'one IPv6 /64 is one source', a: '2001:db8:1:2::1', b: '2001:db8:1:2:ffff::9', same: true },
    { desc: 'two IPv6 /64s differ', a: '2001:db8:1:2::1', b: '2001:db8:1:3::1', same: false },
  ])('$desc', ({ a, b, same }) => {
    expect(sourceKey(a) === sourceKey(b)).toBe(same)
  })
})
