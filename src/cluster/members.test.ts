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

test('MemberTable settles a URL two live members bound for different agents at once: the first keeps it, the other is told', () => {
  const lost: [string, string, string][] = []
  const table = new MemberTable({ graceMs: 60_000, onChange() {}, onLost: (member, c, holder) => lost.push([member, c.tunnel, holder]) })
  table.update('w1.1', '/run/w1.sock', { endpoints: [claim('tn_a', 'same.test', 's1')], sessions: [] })
  table.update('w2.2', '/run/w2.sock', { endpoints: [claim('tn_b', 'same.test', 's2'), claim('tn_c', 'other.test', 's2')], sessions: [] })
  expect(lost).toEqual([['w2.2', 'tn_b', 'w1.1']])
  // The loser's URL is not served from w2 meanwhile; its other endpoint is.
  expect(table.all().find((m) => m.member === 'w2.2')!.endpoints.map((e) => e.tunnel)).toEqual(['tn_c'])
  // Republishing (before the worker released it) loses again; the holder keeps it.
  table.update('w2.2', '/run/w2.sock', { endpoints: [claim('tn_b', 'same.test', 's2')], sessions: [] })
  expect(lost.length).toBe(2)
  table.update('w1.1', '/run/w1.sock', { endpoints: [claim('tn_a', 'same.test', 's1')], sessions: [] })
  expect(lost.length).toBe(2)
  table.clear()
})

test.each([
  { desc: 'the same tunnel of the same account (its agent reconnected to another worker)', next: claim('tn_a', 'same.test', 's9'), lost: 0 },
  { desc: 'another account, same public URL', next: claim('tn_z', 'same.test', 's9', 'bob'), lost: 1 },
  { desc: 'a pooled endpoint (pools share a URL)', next: { ...claim('tn_p', 'same.test', 's9'), pooling: true }, lost: 0 },
  { desc: 'an offline reservation (no session)', next: { ...claim('tn_o', 'same.test'), session: undefined }, lost: 0 },
])('MemberTable URL settlement: $desc', ({ next, lost }) => {
  const told: string[] = []
  const table = new MemberTable({ graceMs: 60_000, onChange() {}, onLost: (_m, c) => told.push(c.tunnel) })
  table.update('w1.1', '/run/w1.sock', { endpoints: [claim('tn_a', 'same.test', 's1')], sessions: [] })
  table.update('w2.2', '/run/w2.sock', { endpoints: [next], sessions: [] })
  expect(told.length).toBe(lost)
  table.clear()
})

test('MemberTable: a URL whose holder died (or let it go) is free for another agent', () => {
  const told: string[] = []
  const table = new MemberTable({ graceMs: 60_000, onChange() {}, onLost: (_m, c) => told.push(c.tunnel) })
  table.update('w1.1', '/run/w1.sock', { endpoints: [claim('tn_a', 'same.test', 's1')], sessions: [] })
  table.gone('w1.1')
  table.update('w2.2', '/run/w2.sock', { endpoints: [claim('tn_b', 'same.test', 's2')], sessions: [] })
  table.update('w3.3', '/run/w3.sock', { endpoints: [], sessions: [] })
  table.update('w2.2', '/run/w2.sock', { endpoints: [], sessions: [] })
  table.update('w3.3', '/run/w3.sock', { endpoints: [claim('tn_c', 'same.test', 's3')], sessions: [] })
  expect(told).toEqual([])
  table.clear()
})
