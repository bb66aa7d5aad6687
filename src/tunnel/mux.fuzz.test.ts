import { expect, test } from 'bun:test'
import { MuxSession } from './mux.ts'
import { encodeFrame, encodeGoAway, encodeReset, encodeWindowIncrement, Flag, FrameType } from './proto/frame.ts'

/** xorshift32: reproducible runs (print the seed; set MUX_FUZZ_SEED to replay). */
function rng(seed: number) {
  let x = seed || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 0x100000000
  }
}

const SEED = Number(process.env.MUX_FUZZ_SEED ?? Date.now() % 0xffffffff)
const SESSIONS = Number(process.env.MUX_FUZZ_SESSIONS ?? 3000)

test(`random and mutated frames never throw out of a session (seed ${SEED})`, () => {
  const rand = rng(SEED)
  const int = (n: number) => Math.floor(rand() * n)
  const valid = () => {
    const id = int(8) * 2 + 1
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
  let closedCleanly = 0
  const deadline = Date.now() + 20_000
  for (let i = 0; i < SESSIONS && Date.now() < deadline; i++) {
    let closed = false
    const session = new MuxSession(
      { write: (b) => b.length, end() {}, terminate() {} },
      {
        onStream(s) {
          s.ondata = (d) => {
            if (d.length % 3 === 0) s.write(d)
            if (d.length % 7 === 0) s.end()
          }
        },
        onClose: () => (closed = true),
      },
    )
    for (let j = 0; j < 40 && !closed; j++) {
      let bytes: Uint8Array = valid()
      const mode = int(4)
      if (mode === 1) bytes = bytes.map((b) => (rand() < 0.05 ? int(256) : b))
      else if (mode === 2) bytes = bytes.subarray(0, int(bytes.length + 1))
      else if (mode === 3) bytes = new Uint8Array(int(40)).map(() => int(256))
      // Deliver in random pieces, as a socket would.
      let at = 0
      while (at < bytes.length) {
        const n = 1 + int(bytes.length - at)
        expect(() => session.feed(bytes.subarray(at, at + n))).not.toThrow()
        at += n
      }
      if (int(10) === 0) session.drain()
      if (int(20) === 0) session.open()?.write(new Uint8Array(int(1000)))
    }
    if (closed) closedCleanly++
    session.transportClosed()
  }
  expect(closedCleanly).toBeGreaterThan(0)
})
