import { expect, test } from 'bun:test'
import { H1Pool, type H1Socket } from './pool.ts'

/** A transport that records the chunks written to it, in order. */
function recorder(batches: boolean): { socket: H1Socket; writes: string[] } {
  const writes: string[] = []
  const socket: H1Socket = {
    write: (data) => (writes.push(new TextDecoder().decode(data)), data.length),
    pause() {},
    resume() {},
    end() {},
    terminate() {},
    timeout() {},
    batches,
  }
  return { socket, writes }
}

test.each([
  { batches: false, sameTurn: [] as string[], desc: 'a socket is corked until the end of the turn' },
  { batches: true, sameTurn: ['head', 'body'] as string[], desc: 'a transport that batches itself (a tunnel stream) is written at once' },
])('writeSoon: $desc, in order either way', async ({ batches, sameTurn }) => {
  const { socket, writes } = recorder(batches)
  const pool = new H1Pool()
  const conn = await pool.connect({ hostname: 'agent', port: 0, key: `k${batches}`, dial: async () => socket })
  conn.writeSoon(new TextEncoder().encode('head'))
  conn.write(new TextEncoder().encode('body'))
  expect(writes).toEqual(sameTurn)
  await new Promise((resolve) => setImmediate(resolve))
  expect(writes).toEqual(['head', 'body'])
  expect(conn.pendingBytes).toBe(0)
})
