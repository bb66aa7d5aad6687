import { describe, expect, test } from 'bun:test'
import { loadPolicyFile } from '../config/load.ts'
import { EndpointTable } from '../endpoints/table.ts'
import type { TlsInfo } from '../policy/types.ts'
import { misdirected } from './misdirected.ts'

const respond = '{on_http_request: [{actions: [{type: custom-response, config: {body: x}}]}]}'
const relay = '{on_tcp_connect: [{actions: [{type: forward-external, config: {url: "tcp://127.0.0.1:1"}}]}]}'
const text = [
  'endpoints:',
  ...['https://up.example.com', 'https://mtls.example.com', 'https://*.wild.example.com'].map((url) => `  - {url: "${url}", traffic_policy: ${respond}}`),
  `  - {url: "tls://raw.example.com", traffic_policy: ${relay}}`,
].join('\n')
const loaded = loadPolicyFile('/nowhere', 'eps.yml', { defaultPorts: { http: 80, https: 443, tcp: 0, tls: 443 }, defaultAccount: 'default' }, { text, hash: 'h' })
const { table } = EndpointTable.build(1, loaded.endpoints)
const pool = (host: string) => table.lookup({ account: '', binding: 'public', scheme: 'https', host, port: 443 })
const tls = (sni: string): TlsInfo => ({ version: '1.3', cipherSuite: '', sni, alpn: 'h2', ja4: '' })

describe('misdirected()', () => {
  test('the endpoints under test load', () => {
    expect([loaded.issues, loaded.endpoints.length]).toEqual([[], 4])
  })

  test.each([
    { desc: 'Host is the SNI', sni: 'up.example.com', host: 'up.example.com', want: false },
    { desc: 'Host names another endpoint (the mTLS bypass)', sni: 'up.example.com', host: 'mtls.example.com', want: true },
    { desc: 'and the other way round', sni: 'mtls.example.com', host: 'up.example.com', want: true },
    { desc: 'another name under the same wildcard endpoint', sni: 'a.wild.example.com', host: 'b.wild.example.com', want: false },
    { desc: 'a wildcard name, Host an exact endpoint', sni: 'a.wild.example.com', host: 'up.example.com', want: true },
    { desc: 'Host names no endpoint', sni: 'up.example.com', host: 'nobody.example.com', want: true },
    { desc: 'SNI names no https endpoint any more (removed by a reload)', sni: 'gone.example.com', host: 'up.example.com', want: true },
    { desc: 'SNI of a tls:// endpoint', sni: 'raw.example.com', host: 'up.example.com', want: true },
  ])('$desc → $want', ({ sni, host, want }) => {
    expect(misdirected(table, pool(host), tls(sni), 443)).toBe(want)
  })

  test('a request without the handshake facts is refused (fails closed)', () => {
    expect(misdirected(table, pool('up.example.com'), undefined, 443)).toBe(true)
    expect(misdirected(table, pool('up.example.com'), tls(''), 443)).toBe(true)
  })
})
