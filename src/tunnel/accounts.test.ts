import { describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { accountForToken, makeAccount, ownsHost, ownsTcpPort, parsePortRanges } from './accounts.ts'

const hex = (s: string) => createHash('sha256').update(s).digest('hex')
const alice = makeAccount({ name: 'alice', authtokens: ['a-token'], domains: ['*.alice.example.com', 'api.example.com'], tcp_ports: '20000-20009, 30000' })
const bob = makeAccount({ name: 'bob', authtokens: [`sha256:${hex('b-token')}`], domains: [] })

describe('accounts', () => {
  test.each([
    { token: 'a-token', want: 'alice' },
    { token: 'b-token', want: 'bob' },
    { token: 'A-TOKEN', want: undefined },
    { token: `sha256:${hex('b-token')}`, want: undefined },
    { token: '', want: undefined },
  ])('authtoken "$token" → $want', ({ token, want }) => {
    expect(accountForToken([alice, bob], token)?.name).toBe(want as string)
  })

  test.each([
    { host: 'x.alice.example.com', want: true },
    { host: 'a.b.alice.example.com', want: true },
    { host: 'alice.example.com', want: false },
    { host: 'api.example.com', want: true },
    { host: 'x.api.example.com', want: false },
    { host: 'evilalice.example.com', want: false },
  ])('owns $host: $want', ({ host, want }) => {
    expect(ownsHost(alice, host)).toBe(want)
  })

  test('tcp port ranges', () => {
    expect([19999, 20000, 20009, 20010, 30000].map((p) => ownsTcpPort(alice, p))).toEqual([false, true, true, false, true])
    expect(() => parsePortRanges('10-5')).toThrow('invalid port range')
    expect(() => parsePortRanges('abc')).toThrow('invalid port range')
  })
})
