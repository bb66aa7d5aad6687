/**
 * Fuzz test for the edge's muxado reader and sessions: valid, mutated, truncated and random frames,
 * delivered in random pieces to sessions over in-memory transports that take everything, part, or
 * nothing (a peer that does not read). No throw may escape `feed`, and memory must stay bounded.
 *
 * Reproduce a failure with the seed it prints:  WARREN_FUZZ_SEED=1234 bun test src/tunnel/mux.fuzz.test.ts
 * More inputs (bench/soak):                     WARREN_FUZZ_COUNT=1000000 bun test …
 */
import { expect, test } from 'bun:test'
import { fuzzSettings, makeRng } from '../../test/helpers/fuzz.ts'
import { MuxSession, type MuxTransport } from './mux.ts'
import { encodeFrame, encodeGoAway, encodeReset, encodeWindowIncrement, Flag, FrameType } from './proto/frame.ts'

const { seed: SEED, count: FRAMES, explicitCount } = fuzzSettings()
/** A default run stops early on a very slow machine; an explicit WARREN_FUZZ_COUNT runs them all. */
const TIME_BUDGET_MS = explicitCount ? Infinity : 20_000

test(`${FRAMES} random and mutated frames never throw out of a session, memory bounded (seed ${SEED})`, () => {
  const rng = makeRng(SEED)
  const { int } = rng
  const valid = () => {
    const id = int(8) * 2 + 1
    // One frame in 64 is large, so partial frames are held across many pieces.
    if (int(64) === 0) return encodeFrame(FrameType.DATA, int(4), id, new Uint8Array(int(300_000)))
    switch (int(5)) {
      case 0:
        return encodeFrame(FrameType.DATA, int(4), id, new Uint8Array(int(300)))
      case 1:
        return encodeWindowIncrement(id, int(0x80000000))
      case 2:
        return encodeReset(id, int(16))
      case 3:
        return encodeGoAway(id, int(16), 'x')
      default:
        return encodeFrame(FrameType.DATA, Flag.SYN, id, new Uint8Array([0, 0, 0, int(10)]))
    }
  }
  Bun.gc(true)
  const rssBefore = process.memoryUsage().rss
  let peakRss = rssBefore
  let frames = 0
  let sessions = 0
  let closedCleanly = 0
  const started = performance.now()
  while (frames < FRAMES && performance.now() - started < TIME_BUDGET_MS) {
    sessions++
    let closed = false
    // Takes everything, a random part, or nothing at all (a peer that never reads).
    const mode = int(3)
    const transport: MuxTransport = { write: (b) => (mode === 0 ? b.length : mode === 1 ? int(b.length + 1) : 0), end() {}, terminate() {} }
    const session = new MuxSession(transport, {
      onStream(s) {
        s.ondata = (d) => {
          if (d.length % 3 === 0) s.write(d)
          if (d.length % 7 === 0) s.end()
          if (d.length % 11 === 0) s.pause()
          if (d.length % 13 === 0) s.resume()
        }
      },
      onClose: () => (closed = true),
    })
    for (let j = 0; j < 40 && !closed && frames < FRAMES; j++, frames++) {
      let bytes: Uint8Array = valid()
      const mutation = int(4)
      if (mutation === 1) {
        bytes = bytes.slice()
        // Mostly in the first bytes, where the headers are.
        for (let k = 1 + int(8); k > 0 && bytes.length; k--) bytes[int(rng.chance(0.8) ? Math.min(bytes.length, 32) : bytes.length)] = int(256)
      }
      else if (mutation === 2) bytes = bytes.subarray(0, int(bytes.length + 1))
      else if (mutation === 3) bytes = rng.bytes(int(40))
      // Deliver in random pieces, as a socket would.
      let at = 0
      while (at < bytes.length) {
        const n = 1 + int(bytes.length - at)
        try {
          session.feed(bytes.subarray(at, at + n))
        } catch (err) {
          throw new Error(`mux fuzz: seed ${SEED}, session ${sessions}, frame ${frames}: feed threw ${String(err)}`)
        }
        at += n
      }
      if (int(10) === 0) session.drain()
      if (int(20) === 0) session.open()?.write(new Uint8Array(int(1000)))
    }
    if (closed) closedCleanly++
    session.transportClosed()
    if ((sessions & 255) === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss)
  }
  Bun.gc(true)
  const settledRss = process.memoryUsage().rss
  const mb = (n: number) => Math.round(n / 1024 / 1024)
  console.log(
    `mux fuzz: seed ${SEED}, ${frames} frames in ${sessions} sessions, ${Math.round(performance.now() - started)} ms; ` +
      `RSS ${mb(rssBefore)} MB before, peak ${mb(peakRss)} MB, settled ${mb(settledRss)} MB`,
  )
  expect(closedCleanly).toBeGreaterThan(0)
  // A slow machine may stop early on time; it must still have covered a meaningful share.
  expect(frames).toBeGreaterThanOrEqual(Math.min(FRAMES, 20_000))
  // Sessions are dropped as they end: nothing a peer sent may stay behind.
  expect(settledRss - rssBefore).toBeLessThan(128 * 1024 * 1024)
}, Math.max(60_000, FRAMES / 5))
