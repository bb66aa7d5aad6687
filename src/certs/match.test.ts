import { describe, expect, test } from 'bun:test'
import { buildIndex, isValidName, normalizeName, selectFrom, wildcardFor } from './match.ts'
import type { CertPair } from './pair.ts'

const DAY = 24 * 60 * 60 * 1000
const NOW = Date.UTC(2030, 0, 1)

function pair(id: string, names: string[], options: { source?: CertPair['source']; days?: number } = {}): CertPair {
  return { cert: id, key: '', names, notAfter: new Date(NOW + (options.days ?? 30) * DAY), issuer: 'CN=test', source: options.source ?? 'file' }
}

describe('normalizeName()', () => {
  test.each([
    { desc: 'lower-cases', name: 'API.Example.COM', want: 'api.example.com' },
    { desc: 'drops the trailing dot', name: 'a.example.com.', want: 'a.example.com' },
    { desc: 'keeps wildcards', name: '*.Example.com', want: '*.example.com' },
    { desc: 'compresses IPv6 as node prints it in SANs', name: '0:0:0:0:0:0:0:1', want: '::1' },
    { desc: 'strips IPv6 brackets', name: '[FE80:0:0:0:0:0:0:1]', want: 'fe80::1' },
    { desc: 'keeps IPv4', name: '127.0.0.1', want: '127.0.0.1' },
  ])('$desc: "$name"', ({ name, want }) => {
    expect(normalizeName(name)).toBe(want)
  })
})

describe('isValidName()', () => {
  test.each([
    { name: 'a.example.com', want: true },
    { name: 'localhost', want: true },
    { name: '*.example.com', want: true },
    { name: '127.0.0.1', want: true },
    { name: '::1', want: true },
    { name: 'a.*.example.com', want: false },
    { name: 'f*.example.com', want: false },
    { name: '-a.example.com', want: false },
    { name: 'a..example.com', want: false },
    { name: 'a b.example.com', want: false },
    { name: '', want: false },
    { name: `${'a'.repeat(64)}.example.com`, want: false },
    { name: `${'a.'.repeat(127)}a`, want: false },
  ])('isValidName("$name") is $want', ({ name, want }) => {
    expect(isValidName(name)).toBe(want)
  })
})

describe('wildcardFor()', () => {
  test.each([
    { name: 'a.example.com', want: '*.example.com' },
    { name: 'a.b.example.com', want: '*.b.example.com' },
    { name: 'localhost', want: undefined },
    { name: '127.0.0.1', want: undefined },
    { name: '*.example.com', want: undefined },
  ])('wildcardFor("$name") is $want', ({ name, want }) => {
    expect(wildcardFor(name)).toBe(want as string)
  })
})

describe('selectFrom()', () => {
  const index = buildIndex([
    pair('wild', ['*.example.com']),
    pair('exact-a', ['a.example.com']),
    pair('deep-wild', ['*.b.example.com']),
    pair('apex', ['example.com']),
    pair('ip', ['127.0.0.1', '::1']),
    pair('dev-exact-c', ['c.example.com'], { source: 'dev' }),
    pair('dev-exact-d', ['d.other.test'], { source: 'dev' }),
    pair('file-exact-d', ['d.other.test'], { source: 'file' }),
    pair('acme-e', ['e.other.test'], { source: 'acme' }),
    pair('dev-e', ['e.other.test'], { source: 'dev' }),
    pair('old-f', ['f.other.test'], { days: 10 }),
    pair('new-f', ['f.other.test'], { days: 60 }),
    pair('expired-file-g', ['g.other.test'], { days: -1 }),
    pair('dev-g', ['g.other.test'], { source: 'dev' }),
  ])

  test.each([
    { desc: 'exact SAN wins over the wildcard', name: 'a.example.com', want: 'exact-a' },
    { desc: 'wildcard covers one label', name: 'x.example.com', want: 'wild' },
    { desc: 'wildcard does not cover two labels', name: 'x.y.example.com', want: undefined },
    { desc: 'the deeper wildcard covers its own one label', name: 'x.b.example.com', want: 'deep-wild' },
    { desc: 'wildcard does not cover the apex', name: 'example.com', want: 'apex' },
    { desc: '*.b.example.com does not cover b.example.com itself', name: 'b.example.com', want: 'wild' },
    { desc: 'names are matched case-insensitively by the caller normalizing', name: normalizeName('A.EXAMPLE.COM.'), want: 'exact-a' },
    { desc: 'IPv4 SAN', name: '127.0.0.1', want: 'ip' },
    { desc: 'IPv6 SAN', name: '::1', want: 'ip' },
    { desc: 'an IP never matches a wildcard', name: '10.0.0.1', want: undefined },
    { desc: 'file before dev, even when the dev one is exact', name: 'c.example.com', want: 'wild' },
    { desc: 'file before dev for the same exact name', name: 'd.other.test', want: 'file-exact-d' },
    { desc: 'acme before dev', name: 'e.other.test', want: 'acme-e' },
    { desc: 'later notAfter among equals', name: 'f.other.test', want: 'new-f' },
    { desc: 'an unexpired dev leaf before an expired file', name: 'g.other.test', want: 'dev-g' },
    { desc: 'unknown name', name: 'nothing.test', want: undefined },
  ])('$desc: $name → $want', ({ name, want }) => {
    expect(selectFrom(index, name, NOW)?.cert).toBe(want as string)
  })

  test('an expired certificate is still returned when it is the only one', () => {
    expect(selectFrom(buildIndex([pair('old', ['x.test'], { days: -5 })]), 'x.test', NOW)?.cert).toBe('old')
  })
})
