import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { EndpointStore } from '../endpoints/store.ts'
import { configureLogging, log } from '../lib/log.ts'
import { makeAccount } from './accounts.ts'
import { AgentRegistry } from './registry.ts'
import type { AgentSession } from './session.ts'

const alice = makeAccount({ name: 'alice', authtokens: ['t'], domains: ['*.alice.example.com', 'db.alice.net'], tcp_ports: '20000-20009' })

beforeAll(() => configureLogging({ level: 'error' }))
afterAll(() => configureLogging({ level: 'info' }))

function registry(): AgentRegistry {
  return new AgentRegistry({ store: new EndpointStore(), domain: 'warren.example.com', defaultPorts: { http: 80, https: 443, tls: 443, tcp: 0 }, graceMs: 1000, waitMs: 100, log })
}

/** The parts of a session a Bind reads before any traffic flows (its account and id). */
function session(): AgentSession {
  return { account: alice, id: 'sess_1', mux: { closed: false } } as unknown as AgentSession
}

function bind(proto: string, opts: Record<string, unknown>): { URL?: string; Error?: string } {
  return registry().bind(session(), { Proto: proto, Opts: { ProxyProto: 0, ...opts }, Extra: {} }, Promise.resolve()) as { URL?: string; Error?: string }
}

describe('AgentRegistry.bind() names an account may use', () => {
  test.each([
    { desc: 'tcp URL under an owned wildcard', proto: 'tcp', opts: { URL: 'tcp://x.alice.example.com:20001' }, url: 'tcp://x.alice.example.com:20001' },
    { desc: 'tcp URL on an owned exact name', proto: 'tcp', opts: { URL: 'tcp://db.alice.net:20002' }, url: 'tcp://db.alice.net:20002' },
    { desc: 'tcp URL on the shared tcp name', proto: 'tcp', opts: { URL: 'tcp://tcp.warren.example.com:20003' }, url: 'tcp://tcp.warren.example.com:20003' },
    { desc: 'tcp Addr with an owned host', proto: 'tcp', opts: { Addr: 'x.alice.example.com:20004' }, url: 'tcp://x.alice.example.com:20004' },
    { desc: 'tcp Addr with only a port', proto: 'tcp', opts: { Addr: ':20005' }, url: 'tcp://tcp.warren.example.com:20005' },
    { desc: 'tcp without a name or port', proto: 'tcp', opts: {}, url: 'tcp://tcp.warren.example.com:20000' },
    { desc: 'tls on an owned name', proto: 'tls', opts: { URL: 'tls://s.alice.example.com' }, url: 'tls://s.alice.example.com' },
    { desc: 'internal tcp, namespaced per account', proto: 'tcp', opts: { URL: 'tcp://db.internal:20006' }, url: 'tcp://db.internal:20006' },
  ])('accepts $desc', ({ proto, opts, url }) => {
    const reply = bind(proto, opts)
    expect(reply.Error).toBeUndefined()
    expect(reply.URL).toBe(url)
  })

  test.each([
    { desc: 'tcp URL on another domain', proto: 'tcp', opts: { URL: 'tcp://x.bob.example.com:20001' }, why: 'does not own x.bob.example.com' },
    { desc: 'tcp URL on a name next to an owned one', proto: 'tcp', opts: { URL: 'tcp://alice.example.com:20001' }, why: 'does not own alice.example.com' },
    { desc: 'tcp Addr with another domain', proto: 'tcp', opts: { Addr: 'bank.example.net:20001' }, why: 'does not own bank.example.net' },
    { desc: 'tcp URL on the shared name of another edge', proto: 'tcp', opts: { URL: 'tcp://1.tcp.ngrok.io:20001' }, why: 'does not own 1.tcp.ngrok.io' },
    { desc: 'tcp URL with an owned name but a port outside the range', proto: 'tcp', opts: { URL: 'tcp://x.alice.example.com:30000' }, why: 'not in the tcp port range' },
    { desc: 'tls on another domain', proto: 'tls', opts: { URL: 'tls://x.bob.example.com' }, why: 'does not own x.bob.example.com' },
    { desc: 'https on another domain', proto: 'https', opts: { URL: 'https://x.bob.example.com' }, why: 'does not own x.bob.example.com' },
  ])('refuses $desc with ERR_WARREN_4003 / ERR_NGROK_320', ({ proto, opts, why }) => {
    const reply = bind(proto, opts)
    expect(reply.URL).toBeUndefined()
    expect(reply.Error).toContain(why)
    expect(reply.Error).toContain('(ERR_WARREN_4003)')
    expect(reply.Error).toEndWith('\n\nERR_NGROK_320')
  })
})
