import { describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { utils } from 'ssh2'
import { accountForSshKey, accountForToken, makeAccount, ownsHost, ownsTcpPort, parsePortRanges, sshKeyDigest } from './accounts.ts'

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

  test('ssh keys: an authorized_keys line or its sha256: fingerprint finds the account', () => {
    const [k1, k2, k3] = [0, 1, 2].map(() => utils.generateKeyPairSync('ed25519', {}).public)
    const blob = (line: string) => Buffer.from(line.split(' ')[1]!, 'base64')
    const fp = `SHA256:${createHash('sha256').update(blob(k2!)).digest('base64').replace(/=+$/, '')}`
    const carol = makeAccount({ name: 'carol', authtokens: [], domains: [], ssh_keys: [`${k1} carol@laptop`, fp] })
    expect(accountForSshKey([alice, carol], blob(k1!))?.name).toBe('carol')
    expect(accountForSshKey([alice, carol], blob(k2!))?.name).toBe('carol')
    expect(accountForSshKey([alice, carol], blob(k3!))).toBeUndefined()
  })

  test.each([
    { desc: 'a bare base64 blob', entry: 'AAAAC3NzaC1lZDI1NTE5AAAAIM57AC' },
    { desc: 'a type that disagrees with the blob', entry: 'ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIM57AC/XytJtit7Xu0cKfsRfpOAa55kYwl1oqvvw7Q8W' },
    { desc: 'a short fingerprint', entry: 'sha256:abc' },
    { desc: 'an md5 fingerprint', entry: 'MD5:12:34:56' },
  ])('sshKeyDigest() refuses $desc', ({ entry }) => {
    expect(() => sshKeyDigest(entry)).toThrow('invalid SSH key')
  })
})
