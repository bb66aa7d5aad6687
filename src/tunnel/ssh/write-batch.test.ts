import { describe, expect, test } from 'bun:test'
import { connect, createServer, type Socket } from 'node:net'
import { batchSocketWrites } from './write-batch.ts'

/** A loopback pair; `writes` records what reaches the server socket's real write, call by call. */
async function pair(): Promise<{ server: Socket; client: Socket; writes: Uint8Array[]; received: () => Promise<Buffer>; close: () => void }> {
  let accepted!: (s: Socket) => void
  const got = new Promise<Socket>((r) => (accepted = r))
  const listener = createServer((s) => accepted(s))
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r))
  const port = (listener.address() as { port: number }).port
  const client = connect(port, '127.0.0.1')
  const server = await got
  const writes: Uint8Array[] = []
  const real = server.write.bind(server) as (data: Uint8Array, ...rest: unknown[]) => boolean
  server.write = ((data: Uint8Array, ...rest: unknown[]) => (writes.push(Buffer.from(data)), real(data, ...rest))) as Socket['write']
  batchSocketWrites(server)
  const chunks: Buffer[] = []
  client.on('data', (c: Buffer) => chunks.push(c))
  const ended = new Promise<void>((r) => client.on('end', r))
  return {
    server,
    client,
    writes,
    received: async () => (await ended, Buffer.concat(chunks)),
    close: () => (client.destroy(), server.destroy(), listener.close()),
  }
}

const tick = () => new Promise<void>((r) => setImmediate(r))

describe('batchSocketWrites', () => {
  test('the pieces of one turn go out in one write, in order; the next turn is a new write', async () => {
    const p = await pair()
    try {
      p.server.write(Buffer.from('len:'))
      p.server.write(Buffer.from('ciphertext:'))
      p.server.write(Buffer.from('tag'))
      expect(p.writes.length).toBe(0)
      await tick()
      await tick()
      expect(p.writes.map((w) => Buffer.from(w).toString())).toEqual(['len:ciphertext:tag'])
      p.server.write(Buffer.from('|next'))
      await tick()
      await tick()
      expect(p.writes.length).toBe(2)
      p.server.end()
      expect((await p.received()).toString()).toBe('len:ciphertext:tag|next')
    } finally {
      p.close()
    }
  })

  test('end() sends what waits in the batch before the FIN', async () => {
    const p = await pair()
    try {
      p.server.write(Buffer.from('a'))
      p.server.write(Buffer.from('b'))
      p.server.end()
      expect((await p.received()).toString()).toBe('ab')
      expect(p.writes.length).toBe(1)
    } finally {
      p.close()
    }
  })

  test('a batch that reaches 256 KiB goes out at once; strings and callbacks flush first and keep their order', async () => {
    const p = await pair()
    try {
      const big = Buffer.alloc(256 * 1024, 0x61)
      p.server.write(Buffer.from('x'))
      p.server.write(big)
      expect(p.writes.length).toBe(1)
      expect(p.writes[0]!.length).toBe(big.length + 1)
      p.server.write(Buffer.from('y'))
      let called = false
      p.server.write('z', () => (called = true))
      expect(p.writes.length).toBe(3)
      p.server.end()
      const all = await p.received()
      expect(all.length).toBe(big.length + 3)
      expect(all.subarray(-2).toString()).toBe('yz')
      expect(called).toBe(true)
    } finally {
      p.close()
    }
  })

  test('bytes written after the socket closed are dropped, not thrown', async () => {
    const p = await pair()
    try {
      p.server.write(Buffer.from('late'))
      p.server.destroy()
      await tick()
      await tick()
      expect(p.writes.length).toBe(0)
    } finally {
      p.close()
    }
  })
})
