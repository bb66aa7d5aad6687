import { afterEach, describe, expect, test } from 'bun:test'
import { sessionPair as pair } from '../../test/helpers/mux-pair.ts'
import { spliceStreams, type MuxStream } from './mux.ts'
import { INITIAL_WINDOW } from './proto/frame.ts'

const cleanups: (() => void)[] = []
/** A session pair that is closed after the test. */
async function sessionPair(onStream: (s: MuxStream) => void) {
  const p = await pair(onStream)
  cleanups.push(() => p.close())
  return p
}
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await Bun.sleep(2)
  }
}

/**
 * The cross-node path in small: a "client" stream on the link pair, spliced on the holder to a stream
 * it opens on the agent pair, whose agent end runs `agent`.
 */
async function splicedPath(agent: (s: MuxStream) => void) {
  const agentPair = await sessionPair(agent)
  const splices: { readonly pending: number }[] = []
  const held: MuxStream[] = []
  const linkPair = await sessionPair((linkStream) => {
    const toAgent = agentPair.opener.open()!
    held.push(toAgent)
    splices.push(spliceStreams(linkStream, toAgent))
  })
  const client = linkPair.opener.open()!
  return { client, splices, held }
}

function pattern(size: number, seed: number): Uint8Array {
  return new Uint8Array(size).map((_, i) => (i * seed + 7) % 251)
}

/** Writes `bytes` as the stream takes them (more on each drain), then ends it. */
function sendAll(stream: MuxStream, bytes: Uint8Array): void {
  let at = 0
  const more = () => {
    while (at < bytes.length) {
      const n = stream.write(bytes.subarray(at, at + 64 * 1024))
      at += n
      if (n === 0) return
    }
    stream.end()
  }
  stream.ondrain = more
  more()
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks))
}

describe('spliceStreams', () => {
  test('carries 2 MiB each way intact, and a FIN each way closes both streams as ended', async () => {
    let agentStream: MuxStream | undefined
    const fromClient: Uint8Array[] = []
    let agentClosed: string | undefined
    const up = pattern(2 * 1024 * 1024, 31)
    const down = pattern(2 * 1024 * 1024, 17)
    const { client, held } = await splicedPath((s) => {
      agentStream = s
      s.ondata = (c) => void fromClient.push(c.slice())
      s.onend = () => {
        // Answer once the request is in, then end: as an upstream behind an agent would.
        sendAll(s, down)
      }
      s.onclose = () => (agentClosed = s.closeCause)
    })
    const toClient: Uint8Array[] = []
    client.ondata = (c) => void toClient.push(c.slice())
    let clientEnded = false
    client.onend = () => (clientEnded = true)
    sendAll(client, up)
    await until(() => clientEnded && client.closed && agentClosed !== undefined)
    expect(agentStream).toBeDefined()
    expect(concat(fromClient)).toEqual(up)
    expect(concat(toClient)).toEqual(down)
    expect(client.closeCause).toBe('ended')
    expect(agentClosed).toBe('ended')
    expect(held[0]!.closed).toBe(true)
  })

  test('a client that stops reading stops the agent: what waits on the holder stays within one window', async () => {
    const total = 16 * 1024 * 1024
    const body = pattern(total, 13)
    let written = 0
    const { client, splices } = await splicedPath((s) => {
      const more = () => {
        while (written < total) {
          const n = s.write(body.subarray(written, written + 64 * 1024))
          written += n
          if (n === 0) return
        }
        s.end()
      }
      s.ondrain = more
      s.ondata = () => {}
      // The agent answers at once: the client's first bytes open the stream.
      queueMicrotask(more)
    })
    const got: Uint8Array[] = []
    let received = 0
    client.ondata = (c) => {
      got.push(c.slice())
      received += c.length
    }
    client.pause()
    client.write(new TextEncoder().encode('GET /big'))
    // The client reads one window (nothing credits it back), then the agent is held up.
    await until(() => received >= INITIAL_WINDOW && splices.length === 1)
    await Bun.sleep(300)
    const stuckAt = written
    expect(received).toBe(INITIAL_WINDOW)
    // The holder keeps at most the link stream's window; the agent wrote at most both windows more.
    expect(splices[0]!.pending).toBeLessThanOrEqual(INITIAL_WINDOW)
    expect(stuckAt).toBeLessThanOrEqual(3 * INITIAL_WINDOW)
    await Bun.sleep(200)
    expect(written).toBe(stuckAt)
    client.resume()
    await until(() => received === total)
    expect(concat(got)).toEqual(body)
  })

  test.each(['client', 'agent'] as const)('a reset by the %s resets the other side', async (who) => {
    let agentStream: MuxStream | undefined
    const { client, held } = await splicedPath((s) => {
      agentStream = s
      s.ondata = () => {}
    })
    client.write(new TextEncoder().encode('hello'))
    await until(() => agentStream !== undefined)
    if (who === 'client') client.terminate()
    else agentStream!.terminate()
    const other = who === 'client' ? agentStream! : client
    await until(() => other.closed)
    expect(other.closeCause).toBe('reset')
    expect(held[0]!.closed).toBe(true)
  })
})
