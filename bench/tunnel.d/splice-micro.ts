// bench/tunnel.d/splice-micro.ts: what the member holding an agent spends per forwarded DATA frame
// between a link stream and the agent's stream, in process (sessions on in-memory transports, no
// sockets, no TLS): the byte relay (src/proxy/tcp-relay.ts, before) against spliceStreams
// (src/tunnel/mux.ts). One link session reads batches of 16 frames (a /hello request each, 150 bytes)
// for 64 pooled streams, forwards them to the agent's session, which writes one batch per turn; best of
// 30 rounds of 200 batches. Load-independent enough to compare the two ways on a busy machine:
//
//   bun bench/tunnel.d/splice-micro.ts
//
// Prints ns per forwarded frame, parsing and batching included, for both ways.
import { Relay } from '../../src/proxy/tcp-relay.ts'
import { feedRelayFromStream } from '../../src/proxy/tunnel-relay.ts'
import { MuxSession, spliceStreams, type MuxStream } from '../../src/tunnel/mux.ts'
import { encodeFrame, Flag, FrameType } from '../../src/tunnel/proto/frame.ts'

const STREAMS = 64
const PER_BATCH = 16
const BATCHES = 200
const body = new Uint8Array(150).fill(0x47)
const sink = { write: (b: Uint8Array) => b.length, end() {}, terminate() {} }

function round(way: 'relay' | 'splice'): number {
  const agent = new MuxSession(sink, { onStream: (s) => s.terminate(), onClose() {} }, { role: 'server' })
  const link = new MuxSession(
    sink,
    {
      onStream(linkStream: MuxStream) {
        const toAgent = agent.open()!
        if (way === 'splice') return void spliceStreams(linkStream, toAgent)
        const relay = new Relay(linkStream, toAgent)
        linkStream.ondata = (chunk) => void relay.fromClient(chunk)
        linkStream.ondrain = () => relay.clientDrained()
        linkStream.onend = () => relay.clientEnded()
        feedRelayFromStream(relay, toAgent)
      },
      onClose() {},
    },
    { role: 'client', limits: { maxRemoteStreams: 1 << 16 } },
  )
  // Open the streams (SYN), then the measured batches: fresh buffers, as sockets hand them out.
  link.feed(Buffer.concat(Array.from({ length: STREAMS }, (_, i) => encodeFrame(FrameType.DATA, Flag.SYN, 2 + 2 * i, body))))
  agent.flush()
  link.flush()
  const batches = Array.from({ length: BATCHES }, (_, b) =>
    Buffer.concat(Array.from({ length: PER_BATCH }, (_, i) => encodeFrame(FrameType.DATA, 0, 2 + 2 * ((b * PER_BATCH + i) % STREAMS), body))),
  )
  const started = Bun.nanoseconds()
  for (const batch of batches) {
    link.feed(batch)
    agent.flush()
    link.flush()
  }
  return (Bun.nanoseconds() - started) / (BATCHES * PER_BATCH)
}

for (const way of ['relay', 'splice', 'relay', 'splice'] as const) {
  let best = Infinity
  for (let r = 0; r < 30; r++) best = Math.min(best, round(way))
  console.log(`${way.padEnd(6)} ${best.toFixed(0)} ns per forwarded frame (best of 30 rounds of ${BATCHES * PER_BATCH} frames)`)
}
