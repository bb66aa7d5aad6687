import { describe, expect, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { CODES } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'
import { makeAccount } from './accounts.ts'
import { encodeFrame, Flag, FrameReader, FrameType, INITIAL_WINDOW, MuxError, readU32 } from './proto/frame.ts'
import { encodeStreamType, StreamType } from './proto/messages.ts'
import { AgentSession, PREAUTH_MAX_BYTES } from './session.ts'

// The limits an agent session puts on a peer before and after Auth, over an in-memory transport.
const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet, enabled: () => false }

function harness(options: { authTimeoutMs?: number } = {}) {
  const written: Uint8Array[] = []
  const limits: Record<string, unknown>[] = []
  // Bun ignores terminate() right after end() (and an ended socket stays open while the peer keeps it):
  // a cut must terminate before any end.
  const closing: string[] = []
  const session = new AgentSession(
    { write: (b) => (written.push(b.slice()), b.length), end: () => void closing.push('end'), terminate: () => void closing.push('terminate') },
    '192.0.2.1:5000',
    {
      accounts: () => [makeAccount({ name: 'alice', authtokens: ['good'], domains: [] })],
      cookieSecret: randomBytes(32),
      log: quiet,
      bind: () => ({}),
      unbind: () => ({}),
      closed() {},
      authTimeoutMs: options.authTimeoutMs ?? 60_000,
      limitLog: (_level, _msg, fields) => void limits.push(fields),
    },
  )
  // Frames go out at the end of the event-loop turn; the tests look at them at once.
  const frames = () => {
    session.mux.flush()
    return new FrameReader().push(Buffer.concat(written))
  }
  const goAway = () => {
    const f = frames().find((x) => x.type === FrameType.GOAWAY)
    return f && readU32(f.body, 4)
  }
  return { session, frames, goAway, limits, terminated: () => closing[0] === 'terminate' }
}

const data = (id: number, body: Uint8Array, flags = 0) => encodeFrame(FrameType.DATA, flags, id, body)
const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v))

function authenticate(h: ReturnType<typeof harness>, token = 'good'): void {
  h.session.feed(data(5, encodeStreamType(StreamType.AUTH), Flag.SYN))
  h.session.feed(data(5, json({ Version: ['3'], ClientId: '', Extra: { AuthToken: token } })))
}

describe('AgentSession before Auth', () => {
  test('more than the pre-auth allowance in small frames: GOAWAY, cut at once, logged with ERR_WARREN_4008', () => {
    const h = harness()
    h.session.feed(data(3, encodeStreamType(StreamType.HEARTBEAT), Flag.SYN))
    for (let sent = 12; sent <= PREAUTH_MAX_BYTES && !h.terminated(); sent += 1008) h.session.feed(data(3, new Uint8Array(1000)))
    expect(h.terminated()).toBe(true)
    expect(h.goAway()).toBe(MuxError.ENHANCE_YOUR_CALM)
    expect(h.limits).toEqual([expect.objectContaining({ code: CODES.AGENT_PREAUTH_LIMIT, client_addr: '192.0.2.1:5000' })])
    expect(h.session.mux.closed).toBe(true)
  })

  test('a frame header announcing 16 MiB is refused from the header alone', () => {
    const h = harness()
    const header = new Uint8Array(8)
    new DataView(header.buffer).setUint32(0, (0xffffff << 8) | (FrameType.DATA << 4) | Flag.SYN)
    new DataView(header.buffer).setUint32(4, 3)
    h.session.feed(header)
    expect(h.terminated()).toBe(true)
    expect(h.goAway()).toBe(MuxError.FRAME_SIZE)
    expect(h.limits[0]).toMatchObject({ code: CODES.AGENT_PREAUTH_LIMIT })
  })

  test('a fifth stream is refused with RST(StreamRefused); the session stays up', () => {
    const h = harness()
    for (const id of [3, 5, 7, 9, 11]) h.session.feed(data(id, new Uint8Array([0, 0]), Flag.SYN))
    const rst = h.frames().filter((f) => f.type === FrameType.RST)
    expect(rst.map((f) => [f.streamId, readU32(f.body)])).toEqual([[11, MuxError.STREAM_REFUSED]])
    expect(h.session.mux.closed).toBe(false)
  })

  test('no Auth within the deadline: cut, logged with ERR_WARREN_4009', async () => {
    const h = harness({ authTimeoutMs: 30 })
    await Bun.sleep(80)
    expect(h.terminated()).toBe(true)
    expect(h.limits).toEqual([expect.objectContaining({ code: CODES.AGENT_AUTH_TIMEOUT })])
  })

  test('a failed Auth does not lift the limits', async () => {
    const h = harness()
    authenticate(h, 'wrong')
    await Bun.sleep(0)
    expect(h.session.account).toBeUndefined()
    h.session.feed(data(7, new Uint8Array(PREAUTH_MAX_BYTES), Flag.SYN))
    expect(h.terminated()).toBe(true)
  })
})

describe('AgentSession after Auth', () => {
  test('the allowance, the deadline and the stream cap no longer apply; frames up to the window are accepted', async () => {
    const h = harness({ authTimeoutMs: 30 })
    authenticate(h)
    expect(h.session.account?.name).toBe('alice')
    await Bun.sleep(80)
    expect(h.terminated()).toBe(false)
    h.session.feed(data(7, encodeStreamType(StreamType.HEARTBEAT), Flag.SYN))
    for (let i = 0; i < 3; i++) h.session.feed(data(7, new Uint8Array(INITIAL_WINDOW / 2 - (i === 0 ? 4 : 0))))
    for (let id = 9; id < 9 + 2 * 20; id += 2) h.session.feed(data(id, encodeStreamType(StreamType.HEARTBEAT), Flag.SYN))
    expect(h.session.mux.closed).toBe(false)
    expect(h.frames().filter((f) => f.type === FrameType.RST)).toEqual([])
    expect(h.limits).toEqual([])
    h.session.close()
  })

  test('a frame larger than a stream window ends the session with GOAWAY(FrameSizeError)', () => {
    const h = harness()
    authenticate(h)
    h.session.feed(data(7, new Uint8Array(INITIAL_WINDOW + 1), Flag.SYN))
    expect(h.goAway()).toBe(MuxError.FRAME_SIZE)
    expect(h.session.mux.closed).toBe(true)
  })

  test('RPC requests held unparsed are capped per session', () => {
    const h = harness()
    authenticate(h)
    // Five Bind streams each holding 1 MiB - 1 of an unfinished JSON request: the fifth passes the 4 MiB cap.
    const chunk = new Uint8Array(64 * 1024).fill(0x20)
    const ids = [7, 9, 11, 13, 15]
    for (const id of ids) {
      h.session.feed(data(id, new Uint8Array([0, 0, 0, 1, 0x7b]), Flag.SYN))
      for (let i = 0; i < 15; i++) h.session.feed(data(id, chunk))
    }
    // (Its later frames are then answered with RST(StreamClosed), as for any closed stream.)
    const refused = h.frames().filter((f) => f.type === FrameType.RST && readU32(f.body) === MuxError.FRAME_SIZE)
    expect(refused.map((f) => f.streamId)).toEqual([15])
    h.session.close()
  })
})
