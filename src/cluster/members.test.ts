import { expect, test } from 'bun:test'
import { MemberTable } from './members.ts'
import type { EndpointClaim } from './registry.ts'

function claim(tunnel: string, host: string, session: string | undefined = 's1', account = 'alice'): EndpointClaim {
  return {
    tunnel,
    account,
    url: { scheme: 'https', host, port: undefined, wildcard: false, binding: 'public' },
    proto: 'https',
    proxyProtocol: 0,
    pooling: false,
    policy: {},
    description: undefined,
    metadata: undefined,
    session,
  }
}

test('MemberTable keeps a dead member\'s endpoints offline for the grace period, then drops them', async () => {
  let changes = 0
  const table = new MemberTable({ graceMs: 80, onChange: () => changes++ })
  table.update('w1.1', '/run/w1.sock', { endpoints: [claim('tn_a', 'a.test')], sessions: [{ id: 's1', account: 'alice', remoteAddr: '127.0.0.1:1', connectedAt: 0, clientInfo: {}, latencyMs: 1 }] })
  table.gone('w1.1')
  const [dead] = table.all()
  expect(dead).toMatchObject({ member: 'w1.1', alive: false, sessions: [] })
  expect(dead!.endpoints.map((e) => e.session)).toEqual([undefined])
  await Bun.sleep(150)
  expect(table.all()).toEqual([])
  expect(changes).toBe(3)
})

test.each([
  { desc: 'the same tunnel id of the same account', next: claim('tn_a', 'other.test', 's2'), left: 0 },
  { desc: 'the same URL of the same account', next: claim('tn_b', 'a.test', 's2'), left: 0 },
  { desc: 'the same tunnel id of another account (no takeover)', next: claim('tn_a', 'a.test', 's2', 'bob'), left: 1 },
])('MemberTable: a live member binding $desc ends a dead member\'s reservation', ({ next, left }) => {
  const table = new MemberTable({ graceMs: 60_000, onChange() {} })
  table.update('w1.1', '/run/w1.sock', { endpoints: [claim('tn_a', 'a.test')], sessions: [] })
  table.gone('w1.1')
  table.update('w2.2', '/run/w2.sock', { endpoints: [next], sessions: [] })
  expect(table.all().find((m) => m.member === 'w1.1')?.endpoints.length ?? 0).toBe(left)
  table.clear()
})

test('MemberTable forgets a member that held nothing as soon as it is gone', () => {
  const table = new MemberTable({ graceMs: 60_000, onChange() {} })
  table.update('w1.1', '/run/w1.sock', { endpoints: [], sessions: [] })
  table.gone('w1.1')
  expect(table.all()).toEqual([])
})
