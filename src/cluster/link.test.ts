import { afterAll, expect, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { issueLeaf, loadOrCreateDevCa } from '../certs/dev-ca.ts'
import type { TunnelStream } from '../endpoints/endpoint.ts'
import type { MuxStream } from '../tunnel/mux.ts'
import { sessionPair } from '../../test/helpers/mux-pair.ts'
import { encodeFrame } from './frames.ts'
import { linkDialer, serveLink, type LinkRequest } from './link.ts'

async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!check() && Date.now() < deadline) await Bun.sleep(10)
  return check()
}

const dir = mkdtempSync(join(tmpdir(), 'warren-link-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/**
 * The agent's side as the holder sees it: a stream that echoes what it is sent, taking at most
 * `perWrite` bytes per write and asking for the rest after a drain (a slow agent).
 */
function slowEcho(perWrite: number): TunnelStream & { paused: number } {
  let closed = false
  const stream = {
    paused: 0,
    ondata: (_: Uint8Array) => {},
    ondrain: () => {},
    onend: () => {},
    onclose: () => {},
    get closed() {
      return closed
    },
    closeCause: undefined,
    resetCode: undefined,
    write(chunk: Uint8Array) {
      const n = Math.min(chunk.length, perWrite)
      const echoed = chunk.slice(0, n)
      setTimeout(() => {
        stream.ondata(echoed)
        stream.ondrain()
      }, 1)
      return n
    },
    end() {
      setTimeout(() => stream.onend(), 5)
    },
    terminate() {
      closed = true
      stream.onclose()
    },
    pause() {
      stream.paused++
    },
    resume() {},
  }
  return stream
}

test('a link stream carries 4 MiB each way intact; a client that stops reading pauses the agent', async () => {
  const path = join(dir, 'w1.sock')
  const seen: LinkRequest[] = []
  const agent = slowEcho(64 * 1024)
  const link = serveLink(path, async (r) => (seen.push(r), agent))
  const dialer = linkDialer()
  try {
    const stream = await dialer.dial(path, { account: 'alice', tunnel: 'tn_1', client: '127.0.0.1:5000', wait: true })
    expect(stream).toBeDefined()
    expect(seen).toEqual([{ account: 'alice', tunnel: 'tn_1', client: '127.0.0.1:5000', wait: true }])
    const total = 4 * 1024 * 1024
    const sent = new Uint8Array(total).map((_, i) => (i * 31) % 251)
    const got: Uint8Array[] = []
    let received = 0
    const done = new Promise<void>((resolve) => {
      stream!.ondata = (chunk) => {
        got.push(chunk)
        received += chunk.length
        if (received >= total) resolve()
      }
    })
    // Write as a relay does: what write() did not take waits for ondrain.
    let offset = 0
    const pump = () => {
      while (offset < total) {
        const n = stream!.write(sent.subarray(offset, Math.min(total, offset + 256 * 1024)))
        offset += n
        if (n === 0) return
      }
    }
    stream!.ondrain = pump
    // The client side reads nothing for a while: the echo piles up at the holder, which pauses the agent.
    stream!.pause()
    pump()
    expect(await waitFor(() => agent.paused > 0, 10_000)).toBe(true)
    stream!.resume()
    await Promise.race([done, Bun.sleep(30_000)])
    expect(received).toBe(total)
    expect(Buffer.compare(Buffer.concat(got), Buffer.from(sent))).toBe(0)
    stream!.terminate()
  } finally {
    dialer.close()
    link.stop()
  }
})

test.each(['dialer', 'agent'] as const)("an agent's muxado stream is spliced to the link stream: data both ways, and a reset by the %s resets the other", async (who) => {
  const path = join(dir, `splice-${who}.sock`)
  const agentStreams: MuxStream[] = []
  // The agent echoes what it reads.
  const agent = await sessionPair((s) => {
    agentStreams.push(s)
    s.ondata = (chunk) => void s.write(chunk.slice())
  })
  const link = serveLink(path, async () => agent.opener.open())
  const dialer = linkDialer()
  try {
    const stream = await dialer.dial(path, { account: 'alice', tunnel: 'tn_s', client: '127.0.0.1:9', wait: true })
    expect(stream).toBeDefined()
    const echoed = new Promise<string>((resolve) => (stream!.ondata = (chunk) => resolve(Buffer.from(chunk).toString())))
    let closed = false
    stream!.onclose = () => (closed = true)
    stream!.write(Buffer.from('through the splice'))
    expect(await echoed).toBe('through the splice')
    expect(link.active).toBe(1)
    if (who === 'dialer') {
      stream!.terminate()
      expect(await waitFor(() => agentStreams[0]!.closed, 5000)).toBe(true)
      expect(agentStreams[0]!.closeCause).toBe('reset')
    } else {
      agentStreams[0]!.terminate()
      expect(await waitFor(() => closed, 5000)).toBe(true)
      expect(stream!.closeCause).toBe('reset')
    }
    expect(await waitFor(() => link.active === 0, 5000)).toBe(true)
  } finally {
    dialer.close()
    link.stop()
    agent.close()
  }
})

test('dial answers undefined when the holder cannot open the stream, or is gone', async () => {
  const path = join(dir, 'w2.sock')
  const link = serveLink(path, async () => undefined)
  const dialer = linkDialer()
  try {
    expect(await dialer.dial(path, { account: 'a', tunnel: 't', client: '127.0.0.1:1', wait: false })).toBeUndefined()
  } finally {
    link.stop()
  }
  expect(await dialer.dial(path, { account: 'a', tunnel: 't', client: '127.0.0.1:1', wait: false })).toBeUndefined()
  dialer.close()
})

test('between nodes the link is TLS with the cluster certificate and refuses a dialler without the secret', async () => {
  const { ca } = await loadOrCreateDevCa(join(dir, 'cluster-ca'))
  const leaf = await issueLeaf(ca, ['warren-cluster'])
  const { ca: strangerCa } = await loadOrCreateDevCa(join(dir, 'stranger-ca'))
  const secret = randomBytes(32)
  const refused: string[] = []
  const seen: LinkRequest[] = []
  const agent = slowEcho(1 << 20)
  const link = serveLink({ hostname: '127.0.0.1', port: 0, tls: { cert: leaf.cert, key: leaf.key }, secret }, async (r) => (seen.push(r), agent), { refused: (remote) => refused.push(remote) })
  const at = `127.0.0.1:${link.port}`
  const dialers: ReturnType<typeof linkDialer>[] = []
  const dialer = (tls: { ca: string; serverName: string }, secret: Uint8Array) => dialers[dialers.push(linkDialer({ tls, secret })) - 1]!
  const request = { account: 'alice', tunnel: 'tn_n', client: '127.0.0.1:7', wait: false }
  try {
    expect(link.port).toBeGreaterThan(0)
    const stream = await dialer({ ca: ca.certPem, serverName: 'warren-cluster' }, secret).dial(at, request)
    expect(stream).toBeDefined()
    // The secret is checked, not passed on to the holder.
    expect(seen).toEqual([request])
    const echoed = new Promise<string>((resolve) => (stream!.ondata = (chunk) => resolve(Buffer.from(chunk).toString())))
    stream!.write(Buffer.from('over tls'))
    expect(await echoed).toBe('over tls')
    stream!.terminate()
    // The wrong secret: refused before the holder is asked.
    expect(await dialer({ ca: ca.certPem, serverName: 'warren-cluster' }, randomBytes(32)).dial(at, request)).toBeUndefined()
    expect(await waitFor(() => refused.length === 1, 2000)).toBe(true)
    // A listener whose certificate is not the cluster's (another CA, another name): the dialler gives up.
    expect(await dialer({ ca: strangerCa.certPem, serverName: 'warren-cluster' }, secret).dial(at, request)).toBeUndefined()
    expect(await dialer({ ca: ca.certPem, serverName: 'other-name' }, secret).dial(at, request)).toBeUndefined()
    expect(seen.length).toBe(1)
  } finally {
    for (const d of dialers) d.close()
    link.stop()
  }
})

test('streams to one member share one link connection: each keeps its own bytes, and one reset leaves the others', async () => {
  const path = join(dir, 'w3.sock')
  const link = serveLink(path, async () => slowEcho(1 << 20))
  const dialer = linkDialer()
  let connections = 0
  // Counts the link connections the listener accepts, through a unix-socket proxy in front of it.
  const front = join(dir, 'w3-front.sock')
  const proxy = Bun.listen<{ peer: Promise<import('bun').Socket<undefined>> }>({
    unix: front,
    socket: {
      open(client) {
        connections++
        client.data = { peer: Bun.connect({ unix: path, socket: { data: (_s, chunk) => void client.write(chunk), close: () => void client.end() } }) }
      },
      data: (client, chunk) => {
        const copy = chunk.slice()
        void client.data.peer.then((p) => p.write(copy))
      },
      close: (client) => void client.data.peer.then((p) => p.end()),
    },
  })
  try {
    const streams = await Promise.all(Array.from({ length: 20 }, (_, i) => dialer.dial(front, { account: 'a', tunnel: `t${i}`, client: '127.0.0.1:1', wait: false })))
    expect(streams.every((s) => s !== undefined)).toBe(true)
    expect(connections).toBe(1)
    streams[0]!.terminate()
    const echoes = await Promise.all(
      streams.slice(1).map(
        (s, i) =>
          new Promise<string>((resolve) => {
            s!.ondata = (chunk) => resolve(Buffer.from(chunk).toString())
            s!.write(Buffer.from(`stream ${i + 1}`))
          }),
      ),
    )
    expect(echoes).toEqual(streams.slice(1).map((_, i) => `stream ${i + 1}`))
    expect(connections).toBe(1)
    expect(await waitFor(() => link.active === 19, 2000)).toBe(true)
  } finally {
    dialer.close()
    proxy.stop(true)
    link.stop()
  }
})

test('a connection whose first frame is not this link version (a member not yet upgraded) is cut and reported', async () => {
  const path = join(dir, 'w4.sock')
  const refused: string[] = []
  let asked = 0
  const link = serveLink(path, async () => (asked++, slowEcho(1024)), { refused: (_remote, why) => refused.push(why) })
  try {
    // What the link of the version before sent first: the request itself, then raw bytes.
    const closed = new Promise<void>((resolve) =>
      Bun.connect({ unix: path, socket: { open: (s) => void s.write(encodeFrame({ account: 'a', tunnel: 't', client: '127.0.0.1:1', wait: false })), data() {}, close: () => resolve() } }),
    )
    await Promise.race([closed, Bun.sleep(5000)])
    expect(refused).toEqual(['version'])
    expect(asked).toBe(0)
  } finally {
    link.stop()
  }
})

test('keep() closes the connections to members no longer live: their streams close, and a later dial connects afresh', async () => {
  const path = join(dir, 'w5.sock')
  const link = serveLink(path, async () => slowEcho(1024))
  const dialer = linkDialer()
  try {
    const first = await dialer.dial(path, { account: 'a', tunnel: 't', client: '127.0.0.1:1', wait: false })
    let closed = false
    first!.ondata = () => {}
    first!.onclose = () => (closed = true)
    dialer.keep(new Set([path]))
    await Bun.sleep(50)
    expect(closed).toBe(false)
    dialer.keep(new Set())
    expect(await waitFor(() => closed, 2000)).toBe(true)
    const second = await dialer.dial(path, { account: 'a', tunnel: 't', client: '127.0.0.1:1', wait: false })
    const echoed = new Promise<string>((resolve) => (second!.ondata = (chunk) => resolve(Buffer.from(chunk).toString())))
    second!.write(Buffer.from('again'))
    expect(await echoed).toBe('again')
  } finally {
    dialer.close()
    link.stop()
  }
})
