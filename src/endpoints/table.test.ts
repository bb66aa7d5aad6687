import { describe, expect, test } from 'bun:test'
import { parseEndpointUrl, formatEndpointUrl } from '../config/url.ts'
import { EMPTY_POLICY } from '../policy/engine.ts'
import type { Endpoint } from './endpoint.ts'
import { EndpointTable } from './table.ts'

function ep(url: string, options: { source?: string; pooling?: boolean; account?: string; port?: number; tunnel?: { online: boolean } } = {}): Endpoint {
  const parsed = parseEndpointUrl(url)
  const port = parsed.port ?? options.port ?? 8080
  const urlText = formatEndpointUrl(parsed)
  return {
    id: `${options.source ?? 'a.yml'}:${url}`,
    kind: 'cloud',
    url: parsed,
    urlText,
    port,
    account: options.account ?? 'default',
    poolingEnabled: options.pooling ?? false,
    source: options.source ?? 'a.yml',
    position: { line: 1, col: 1 },
    description: undefined,
    metadata: undefined,
    policy: EMPTY_POLICY,
    info: { id: 'x', url: urlText, scheme: parsed.scheme, host: parsed.host, port, binding: parsed.binding },
    ...(options.tunnel ? { tunnel: Object.assign(options.tunnel, { proxyProtocol: 0 as const, connect: async () => undefined }) } : {}),
  }
}

/** Agent members whose `online` a test flips, like a session that closes. */
function agentPool(n: number) {
  const states = Array.from({ length: n }, () => ({ online: true }))
  const members = states.map((tunnel, i) => ep('http://p.example.com', { source: `agent-${i}`, pooling: true, tunnel }))
  const { table } = EndpointTable.build(1, members)
  return { pool: table.lookup(pub('p.example.com'))!, states }
}

const pub = (host: string, port = 8080) => ({ account: '', binding: 'public' as const, scheme: 'http' as const, host, port })

describe('EndpointTable.lookup()', () => {
  const { table } = EndpointTable.build(1, [
    ep('http://api.example.com'),
    ep('http://*.example.com'),
    ep('http://*.b.example.com'),
    ep('http://api.example.com:9000'),
    ep('http://svc.internal', { account: 'alice' }),
  ])

  test.each([
    { desc: 'exact host wins over wildcard', host: 'api.example.com', want: 'http://api.example.com' },
    { desc: 'wildcard matches one level', host: 'x.example.com', want: 'http://*.example.com' },
    { desc: 'most specific wildcard wins', host: 'x.b.example.com', want: 'http://*.b.example.com' },
    { desc: 'wildcard matches deeper levels', host: 'x.y.c.example.com', want: 'http://*.example.com' },
    { desc: 'wildcard does not match the apex', host: 'example.com', want: undefined },
    { desc: 'unknown host', host: 'other.org', want: undefined },
  ])('$desc', ({ host, want }) => {
    expect(table.lookup(pub(host))?.members[0]?.urlText).toBe(want as string)
  })

  test('port is part of the key', () => {
    expect(table.lookup(pub('api.example.com', 9000))?.members[0]?.urlText).toBe('http://api.example.com:9000')
    expect(table.lookup(pub('api.example.com', 7000))).toBeUndefined()
  })

  test('internal endpoints are namespaced by account and invisible publicly', () => {
    const key = { binding: 'internal' as const, scheme: 'http' as const, host: 'svc.internal', port: 8080 }
    expect(table.lookup({ ...key, account: 'alice' })?.members[0]?.urlText).toBe('http://svc.internal')
    expect(table.lookup({ ...key, account: 'bob' })).toBeUndefined()
    expect(table.lookup(pub('svc.internal'))).toBeUndefined()
  })
})

describe('EndpointTable.build() pools', () => {
  test('same URL with pooling on both forms a round-robin pool', () => {
    const a = ep('http://p.example.com', { source: 'a.yml', pooling: true })
    const b = ep('http://p.example.com', { source: 'b.yml', pooling: true })
    const { table, rejected } = EndpointTable.build(1, [a, b])
    expect(rejected).toEqual([])
    const pool = table.lookup(pub('p.example.com'))!
    expect(pool.members.length).toBe(2)
    expect([pool.pick().source, pool.pick().source, pool.pick().source]).toEqual(['a.yml', 'b.yml', 'a.yml'])
  })

  test('pick() passes over agent members whose session is closed, at once', () => {
    const { pool, states } = agentPool(3)
    states[1]!.online = false
    const picks = Array.from({ length: 6 }, () => pool.pick().source)
    expect(picks).toEqual(['agent-0', 'agent-2', 'agent-0', 'agent-2', 'agent-0', 'agent-2'])
    states[1]!.online = true
    expect(new Set(Array.from({ length: 3 }, () => pool.pick().source)).size).toBe(3)
  })

  test('peek() names the member pick() gives next, without taking its turn', () => {
    const { pool, states } = agentPool(3)
    states[0]!.online = false
    expect([pool.peek().source, pool.peek().source, pool.pick().source, pool.peek().source]).toEqual(['agent-1', 'agent-1', 'agent-1', 'agent-2'])
  })

  test('pick() falls back to any member when none is online (a request waits for a reconnect)', () => {
    const { pool, states } = agentPool(2)
    for (const s of states) s.online = false
    expect([pool.pick().source, pool.pick().source]).toEqual(['agent-0', 'agent-1'])
  })

  test('pickOther() gives each online member at most once, then undefined', () => {
    const { pool, states } = agentPool(3)
    states[2]!.online = false
    const first = pool.pick()
    const tried = new Set([first])
    const second = pool.pickOther(tried)!
    expect(second).toBeDefined()
    expect(second).not.toBe(first)
    expect(second.source).not.toBe('agent-2')
    tried.add(second)
    expect(pool.pickOther(tried)).toBeUndefined()
  })

  test.each([
    { desc: 'neither pools', a: false, b: false },
    { desc: 'only the first pools', a: true, b: false },
    { desc: 'only the second pools', a: false, b: true },
  ])('conflict when $desc: the first keeps the URL, the error names both files', ({ a, b }) => {
    const { table, rejected } = EndpointTable.build(1, [
      ep('http://p.example.com', { source: 'first.yml', pooling: a }),
      ep('http://p.example.com', { source: 'second.yml', pooling: b }),
    ])
    expect(table.lookup(pub('p.example.com'))!.members.map((m) => m.source)).toEqual(['first.yml'])
    expect(rejected.length).toBe(1)
    expect(rejected[0]!.code).toBe('ERR_WARREN_1005')
    expect(rejected[0]!.endpoint.source).toBe('second.yml')
    expect(rejected[0]!.message).toContain('first.yml')
  })

  test('two accounts can hold the same internal URL', () => {
    const { table, rejected } = EndpointTable.build(1, [
      ep('https://api.internal', { account: 'alice' }),
      ep('https://api.internal', { account: 'bob' }),
    ])
    expect(rejected).toEqual([])
    expect(table.endpoints.length).toBe(2)
  })
})
