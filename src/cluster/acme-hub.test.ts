import { describe, expect, test } from 'bun:test'
import { AcmeHub, localAcmeShare, type AcmeOp } from './acme-hub.ts'

// The supervisor's ACME state for `--workers N`, and the worker-side share over it (the control socket replaced by a direct call).
function worker(hub: AcmeHub, member: string, changes: string[]) {
  const listeners: (() => void)[] = []
  const client = {
    acme: async (op: AcmeOp) => {
      const { value, changed } = hub.handle(member, op)
      if (changed) changes.push(`${member} ${op.op}`)
      return JSON.parse(JSON.stringify({ value })).value as unknown
    },
    onAcmeChange: (l: () => void) => void listeners.push(l),
  }
  return localAcmeShare(client)
}

const cert = (name: string, body: string) => ({ cert: body, key: `key of ${body}`, meta: { name, directory: 'https://ca.test/dir' } })

describe('AcmeHub', () => {
  test('one lock holder per name; the holder releases it, nobody else can', async () => {
    const hub = new AcmeHub()
    const changes: string[] = []
    const w1 = worker(hub, 'w1.1', changes)
    const w2 = worker(hub, 'w2.2', changes)
    const l1 = await w1.lock('a.test')
    expect(l1).toBeDefined()
    expect(await w2.lock('a.test')).toBeUndefined()
    expect(await w2.locked('a.test')).toBe(true)
    // Another name is free.
    expect(await w2.lock('b.test')).toBeDefined()
    // A release by a worker that does not hold the lock leaves it.
    hub.handle('w2.2', { op: 'release', name: 'a.test' })
    expect(await w1.locked('a.test')).toBe(true)
    await l1!.release()
    expect(await w2.locked('a.test')).toBe(false)
    expect(await w2.lock('a.test')).toBeDefined()
  })

  test('a worker gone (its connection closed) frees its locks and its challenge answers at once', async () => {
    const hub = new AcmeHub()
    const w1 = worker(hub, 'w1.1', [])
    const w2 = worker(hub, 'w2.2', [])
    await w1.lock('a.test')
    await w1.putChallenge('http-01:a.test:tok', 'tok.thumb')
    await w2.putChallenge('http-01:b.test:tok', 'tok.b')
    expect(await w2.challenge('http-01:a.test:tok')).toBe('tok.thumb')
    expect(hub.gone('w1.1')).toBe(true)
    expect(await w2.locked('a.test')).toBe(false)
    expect(await w2.challenge('http-01:a.test:tok')).toBeUndefined()
    expect(await w1.challenge('http-01:b.test:tok')).toBe('tok.b')
    // Nothing held: nothing to announce.
    expect(hub.gone('w1.1')).toBe(false)
  })

  test('the account key is the first worker\'s; certificates are stored, listed and announced', async () => {
    const hub = new AcmeHub()
    const changes: string[] = []
    const w1 = worker(hub, 'w1.1', changes)
    const w2 = worker(hub, 'w2.2', changes)
    expect(await w1.accountKey('ca.test-dir', async () => 'key-1')).toBe('key-1')
    expect(await w2.accountKey('ca.test-dir', async () => 'key-2')).toBe('key-1')
    expect(await w2.certificate('a.test')).toBeUndefined()
    await w1.save(cert('a.test', 'chain-1'))
    expect(changes).toEqual(['w1.1 save'])
    expect(await w2.certificate('a.test')).toEqual(cert('a.test', 'chain-1'))
    await w2.save(cert('a.test', 'chain-2'))
    await w2.save(cert('b.test', 'chain-b'))
    expect((await w1.certificates()).map((c) => c.cert).sort()).toEqual(['chain-2', 'chain-b'])
  })
})
