import { describe, expect, test } from 'bun:test'
import { MuxSession, type MuxStream } from './mux.ts'
import { encodeFrame, encodeGoAway, encodeReset, encodeWindowIncrement, Flag, FrameReader, FrameType, INITIAL_WINDOW, MuxError, readU32 } from './proto/frame.ts'

/** A session wired to an in-memory transport that records what it wrote. */
function harness(options: { maxLocalStreams?: number; accept?: number } = {}) {
  const written: Uint8Array[] = []
  let accept = options.accept ?? Infinity
  const opened: MuxStream[] = []
  let closedWith: { code: number; message: string } | undefined
  const session = new MuxSession(
    {
      write(b) {
        const n = Math.min(b.length, accept)
        if (n > 0) written.push(b.slice(0, n))
        accept -= n
        return n
      },
      end() {},
      terminate() {},
    },
    { onStream: (s) => opened.push(s), onClose: (r) => (closedWith = r) },
    options.maxLocalStreams === undefined ? {} : { maxLocalStreams: options.maxLocalStreams },
  )
  // Frames go out at the end of the event-loop turn; the tests look at them at once.
  const frames = () => {
    session.flush()
    return new FrameReader().push(Buffer.concat(written))
  }
  return { session, written, opened, frames, closed: () => closedWith, setAccept: (n: number) => (accept = n) }
}

const data = (id: number, body: string | Uint8Array, flags = 0) =>
  encodeFrame(FrameType.DATA, flags, id, typeof body === 'string' ? new TextEncoder().encode(body) : body)

describe('FrameReader', () => {
  test('reassembles frames split at every byte', () => {
    const bytes = Buffer.concat([data(3, 'hello', Flag.SYN), encodeWindowIncrement(3, 100), encodeGoAway(3, 0, 'bye')])
    const reader = new FrameReader()
    const out = []
    for (const b of bytes) out.push(...reader.push(new Uint8Array([b])))
    expect(out.map((f) => f.type)).toEqual([FrameType.DATA, FrameType.WNDINC, FrameType.GOAWAY])
    expect(new TextDecoder().decode(out[0]!.body)).toBe('hello')
    expect(out[0]!.flags).toBe(Flag.SYN)
  })

  test.each([
    { desc: 'unknown type', bytes: [0, 0, 0, 0x40, 0, 0, 0, 1], code: MuxError.PROTOCOL },
    { desc: 'DATA on stream 0', bytes: [0, 0, 0, 0x10, 0, 0, 0, 0], code: MuxError.PROTOCOL },
    { desc: 'WNDINC with 3-byte body', bytes: [0, 0, 3, 0x20, 0, 0, 0, 1, 0, 0, 1], code: MuxError.FRAME_SIZE },
    { desc: 'RST with 5-byte body', bytes: [0, 0, 5, 0x00, 0, 0, 0, 1, 0, 0, 0, 0, 1], code: MuxError.FRAME_SIZE },
    { desc: 'GOAWAY on a stream', bytes: [0, 0, 8, 0x30, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], code: MuxError.PROTOCOL },
    { desc: 'GOAWAY shorter than 8', bytes: [0, 0, 4, 0x30, 0, 0, 0, 0, 0, 0, 0, 0], code: MuxError.FRAME_SIZE },
  ])('rejects $desc', ({ bytes, code }) => {
    expect(() => new FrameReader().push(new Uint8Array(bytes))).toThrow(expect.objectContaining({ code }))
  })

  test('frame bodies are views of the read, kept past the callback: Bun never reuses a read\'s buffer', async () => {
    // The reader, the agent's early buffering and the TCP relay hold chunks after `data` returns.
    const reads: { chunk: Uint8Array; copy: string }[] = []
    const frames: { body: Uint8Array; copy: string }[] = []
    const reader = new FrameReader()
    const server = Bun.listen({
      hostname: '127.0.0.1',
      port: 0,
      socket: {
        data(_s, chunk) {
          reads.push({ chunk, copy: Buffer.from(chunk).toString('latin1') })
          for (const f of reader.push(chunk)) frames.push({ body: f.body, copy: Buffer.from(f.body).toString('latin1') })
        },
      },
    })
    const client = await Bun.connect({ hostname: '127.0.0.1', port: server.port, socket: { data() {} } })
    for (let i = 0; i < 40; i++) {
      client.write(data(1, `frame ${i} `.padEnd(40 + i, '.')))
      await Bun.sleep(1)
    }
    for (let i = 0; i < 200 && frames.length < 40; i++) await Bun.sleep(5)
    client.end()
    server.stop(true)
    expect(frames).toHaveLength(40)
    expect(reads.length).toBeGreaterThanOrEqual(2)
    expect(new Set(reads.map((r) => r.chunk.buffer)).size).toBe(reads.length)
    expect(reads.filter((r) => Buffer.from(r.chunk).toString('latin1') !== r.copy)).toEqual([])
    expect(frames.filter((f) => Buffer.from(f.body).toString('latin1') !== f.copy)).toEqual([])
  })

  test('a 16 MB frame sent in 16 KB pieces is read in linear time', () => {
    // Concatenating on every chunk took 7 s of CPU here (a pre-auth peer could stall the edge).
    const reader = new FrameReader()
    const head = encodeFrame(FrameType.DATA, 0, 1).subarray(0, 8)
    new DataView(head.buffer, head.byteOffset).setUint32(0, (0xffffff << 8) | (FrameType.DATA << 4))
    const started = performance.now()
    expect(reader.push(head)).toEqual([])
    const piece = new Uint8Array(16 * 1024).fill(7)
    const frames = []
    for (let left = 0xffffff; left > 0; left -= piece.length) frames.push(...reader.push(piece.subarray(0, Math.min(piece.length, left))))
    expect(performance.now() - started).toBeLessThan(2000)
    expect(frames.length).toBe(1)
    expect(frames[0]!.body.length).toBe(0xffffff)
    expect(reader.buffered).toBe(0)
  })
})

describe('MuxSession', () => {
  test('an agent stream opens on SYN and its data arrives in order', () => {
    const h = harness()
    const got: string[] = []
    h.session.feed(data(3, 'abc', Flag.SYN))
    h.opened[0]!.ondata = (c) => got.push(new TextDecoder().decode(c))
    h.session.feed(data(3, 'def'))
    expect(h.opened.map((s) => s.id)).toEqual([3])
    expect(got).toEqual(['def'])
  })

  test('server streams use even ids from 2 and send SYN on the first frame', () => {
    const h = harness()
    const a = h.session.open()!
    const b = h.session.open()!
    expect([a.id, b.id]).toEqual([2, 4])
    a.write(new TextEncoder().encode('x'))
    a.write(new TextEncoder().encode('y'))
    const f = h.frames()
    expect(f[0]!.flags & Flag.SYN).toBe(Flag.SYN)
    expect(f[1]!.flags & Flag.SYN).toBe(0)
  })

  test('writes stop at the 256 KiB window and resume on WNDINC', () => {
    const h = harness()
    const s = h.session.open()!
    let drained = 0
    s.ondrain = () => drained++
    const big = new Uint8Array(INITIAL_WINDOW + 1000)
    expect(s.write(big)).toBe(INITIAL_WINDOW)
    expect(s.write(big)).toBe(0)
    h.session.feed(encodeWindowIncrement(s.id, 500))
    expect(drained).toBe(1)
    expect(s.write(big)).toBe(500)
  })

  test('data past the receive window resets the stream (FlowControl)', () => {
    const h = harness()
    h.session.feed(data(3, '', Flag.SYN))
    const s = h.opened[0]!
    s.pause()
    h.session.feed(data(3, new Uint8Array(INITIAL_WINDOW)))
    h.session.feed(data(3, new Uint8Array(1)))
    expect(s.closed).toBe(true)
    const rst = h.frames().find((f) => f.type === FrameType.RST)!
    expect(new DataView(rst.body.buffer, rst.body.byteOffset).getUint32(0)).toBe(MuxError.FLOW_CONTROL)
  })

  test('consumed data is credited back in halves of the window; a paused stream credits on resume', () => {
    const h = harness()
    const increments = () => h.frames().filter((f) => f.type === FrameType.WNDINC).map((f) => readU32(f.body))
    h.session.feed(data(3, 'hi', Flag.SYN))
    // A small request costs no WNDINC: the peer still has most of its window.
    expect(increments()).toEqual([])
    h.session.feed(data(3, new Uint8Array(INITIAL_WINDOW / 2 - 2)))
    expect(increments()).toEqual([INITIAL_WINDOW / 2])
    h.opened[0]!.pause()
    h.session.feed(data(3, new Uint8Array(INITIAL_WINDOW / 2)))
    h.session.feed(data(3, new Uint8Array(INITIAL_WINDOW / 2)))
    expect(increments()).toEqual([INITIAL_WINDOW / 2])
    h.opened[0]!.resume()
    expect(increments()).toEqual([INITIAL_WINDOW / 2, INITIAL_WINDOW])
    // The peer used its whole window while paused and got all of it back: a full window more is accepted.
    h.session.feed(data(3, new Uint8Array(INITIAL_WINDOW)))
    expect(h.opened[0]!.closed).toBe(false)
  })

  test("a turn's frames reach the transport in one write, at the end of the turn", async () => {
    const h = harness()
    const streams = [h.session.open()!, h.session.open()!, h.session.open()!]
    for (const s of streams) s.write(new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n'))
    streams[0]!.terminate()
    expect(h.written.length).toBe(0)
    await new Promise((resolve) => setImmediate(resolve))
    expect(h.written.length).toBe(1)
    expect(h.frames().map((f) => [f.type, f.streamId])).toEqual([
      [FrameType.DATA, 2],
      [FrameType.DATA, 4],
      [FrameType.DATA, 6],
      [FrameType.RST, 2],
    ])
  })

  test('the server-stream cap is enforced', () => {
    const h = harness({ maxLocalStreams: 2 })
    expect(h.session.open()).toBeDefined()
    const b = h.session.open()!
    expect(h.session.open()).toBeUndefined()
    b.terminate()
    expect(h.session.open()).toBeDefined()
  })

  test('short transport writes are queued and flushed on drain, never lost', () => {
    const h = harness({ accept: 10 })
    const s = h.session.open()!
    s.write(new Uint8Array(100).fill(7))
    h.setAccept(Infinity)
    h.session.drain()
    const f = h.frames()
    expect(f[0]!.body.length).toBe(100)
  })

  test('an agent opening an even stream id ends the session with GOAWAY(Protocol)', () => {
    const h = harness()
    h.session.feed(data(2, 'x', Flag.SYN))
    expect(h.closed()?.code).toBe(MuxError.PROTOCOL)
    expect(h.frames().at(-1)!.type).toBe(FrameType.GOAWAY)
  })

  test('FIN both ways closes a stream', () => {
    const h = harness()
    h.session.feed(data(3, 'x', Flag.SYN))
    const s = h.opened[0]!
    let ended = false
    s.onend = () => (ended = true)
    h.session.feed(data(3, '', Flag.FIN))
    expect(ended).toBe(true)
    expect(s.closed).toBe(false)
    s.end()
    expect(s.closed).toBe(true)
    expect(s.closeCause).toBe('ended')
  })

  test('a stream close handler that opens another stream while the session ends gets none', () => {
    const h = harness()
    const s = h.session.open()!
    let reopened: MuxStream | undefined | 'not called' = 'not called'
    s.onclose = () => (reopened = h.session.open())
    h.session.transportClosed()
    expect(reopened).toBeUndefined()
    expect(h.session.closed).toBe(true)
  })

  test.each([
    { desc: "the peer's RST gives its code", close: (h: ReturnType<typeof harness>, s: MuxStream) => h.session.feed(encodeReset(s.id, MuxError.STREAM_REFUSED)), cause: 'reset', code: MuxError.STREAM_REFUSED },
    { desc: 'our own reset', close: (_h: ReturnType<typeof harness>, s: MuxStream) => s.terminate(), cause: 'terminated', code: undefined },
    { desc: 'the session ending', close: (h: ReturnType<typeof harness>) => h.session.transportClosed(), cause: 'session', code: undefined },
  ])('closeCause tells why a stream closed: $desc', ({ close, cause, code }) => {
    const h = harness()
    const s = h.session.open()!
    s.write(new TextEncoder().encode('request'))
    expect(s.closeCause).toBeUndefined()
    let closes = 0
    s.onclose = () => closes++
    close(h, s)
    expect(closes).toBe(1)
    expect(s.closeCause).toBe(cause as 'reset')
    expect(s.resetCode).toBe(code as number)
  })

  test('what the transport did not take goes out later in order, small frames and large alike', () => {
    const h = harness({ accept: 5 })
    const sent: Uint8Array[] = []
    for (let i = 0; i < 300; i++) {
      const b = new Uint8Array(i % 7 === 0 ? 1000 + i : 1 + (i % 40)).fill(i & 0xff)
      sent.push(b)
      h.session.write(b)
    }
    // The end of the turn: the batch is offered to the transport, which takes 5 bytes of it.
    h.session.flush()
    expect(Buffer.concat(h.written).length).toBe(5)
    for (let i = 300; i < 400; i++) {
      const b = new Uint8Array(1 + (i % 40)).fill(i & 0xff)
      sent.push(b)
      h.session.write(b)
    }
    h.setAccept(Infinity)
    h.session.drain()
    expect(Buffer.concat(h.written).equals(Buffer.concat(sent))).toBe(true)
  })

  test('small frames queued for a peer that does not read cost their bytes, not an array each', () => {
    // 150k DATA frames for unknown streams, each answered with a 12-byte RST: 1.8 MB queued took ~90 MB.
    const h = harness({ accept: 0 })
    const burst = Buffer.concat(Array.from({ length: 1000 }, (_, i) => data(1001 + 2 * i, '')))
    Bun.gc(true)
    const before = process.memoryUsage().rss
    for (let i = 0; i < 150; i++) h.session.feed(burst)
    Bun.gc(true)
    expect(process.memoryUsage().rss - before).toBeLessThan(40 * 1024 * 1024)
    h.setAccept(Infinity)
    h.session.drain()
    expect(Buffer.concat(h.written).length).toBe(150_000 * 12)
  }, 30_000)
  test('a peer that stops reading but keeps sending is cut once maxQueuedBytes wait for it', () => {
    let terminated = false
    let reason: { code: number } | undefined
    const session = new MuxSession(
      { write: () => 0, end() {}, terminate: () => void (terminated = true) },
      { onStream: (s) => void (s.ondata = () => {}), onClose: (r) => void (reason = r) },
      { limits: { maxQueuedBytes: 64 * 1024 } },
    )
    // Every DATA frame for a stream that is gone earns a 12-byte RST that the peer never reads.
    let frames = 0
    while (!terminated && frames < 10_000) {
      session.feed(data(1001 + 2 * frames, 'x'))
      frames++
    }
    expect(terminated).toBe(true)
    // The turn's batch (80 KiB) counts once the transport was offered it.
    expect(frames).toBeGreaterThan(Math.floor((64 * 1024) / 12))
    expect(frames).toBeLessThanOrEqual(Math.floor((64 * 1024 + 81 * 1024) / 12) + 1)
    expect(reason?.code).toBe(MuxError.ENHANCE_YOUR_CALM)
    expect(session.closed).toBe(true)
  })

  test('writeHeader() sends the header of a new stream while the session is congested; write() takes nothing then', () => {
    const h = harness({ accept: 0 })
    // Fill the outbox past its high water mark with data the transport never takes.
    const filler: MuxStream[] = []
    while (!h.session.congested) {
      const s = h.session.open()!
      filler.push(s)
      s.write(new Uint8Array(256 * 1024))
    }
    const stream = h.session.open()!
    expect(stream.write(new Uint8Array([1, 2, 3]))).toBe(0)
    stream.writeHeader(new TextEncoder().encode('proxy-header'))
    h.setAccept(Infinity)
    h.session.drain()
    const mine = h.frames().filter((f) => f.streamId === stream.id && f.type === FrameType.DATA)
    expect(mine.map((f) => new TextDecoder().decode(f.body))).toEqual(['proxy-header'])
  })

  test('limit(): streams past maxRemoteStreams are refused, and a freed slot is reused', () => {
    const h = harness()
    h.session.limit({ maxRemoteStreams: 1 })
    h.session.feed(data(3, 'a', Flag.SYN))
    h.session.feed(data(5, 'b', Flag.SYN))
    expect(h.opened.map((s) => s.id)).toEqual([3])
    expect(h.frames().filter((f) => f.type === FrameType.RST).map((f) => [f.streamId, f.body[3]])).toEqual([[5, MuxError.STREAM_REFUSED]])
    h.opened[0]!.terminate()
    h.session.feed(data(7, 'c', Flag.SYN))
    expect(h.opened.map((s) => s.id)).toEqual([3, 7])
  })

  test('limit(): a frame header over maxFrameBody ends the session before its body arrives', () => {
    const h = harness()
    h.session.limit({ maxFrameBody: 100 })
    h.session.feed(data(3, 'x'.repeat(100), Flag.SYN))
    expect(h.closed()).toBeUndefined()
    h.session.feed(data(5, 'x'.repeat(101), Flag.SYN).subarray(0, 8))
    expect(h.closed()?.code).toBe(MuxError.FRAME_SIZE)
  })
})
