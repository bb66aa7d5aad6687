import { expect, test } from 'bun:test'
import { encodeFrame, FrameReader, frameWriter } from './frames.ts'

test('FrameReader reassembles frames split anywhere and keeps the bytes after them', () => {
  const bytes = Buffer.concat([encodeFrame({ a: 1 }), encodeFrame(['x', 'y']), Buffer.from('raw tail')])
  for (let cut = 1; cut < bytes.length; cut++) {
    const reader = new FrameReader()
    const got = [...reader.push(bytes.subarray(0, cut), 2)]
    got.push(...reader.push(bytes.subarray(cut), 2 - got.length))
    expect(got).toEqual([{ a: 1 }, ['x', 'y']])
    expect(Buffer.from(reader.rest()).toString()).toBe('raw tail')
  }
})

test('FrameReader refuses a frame over 16 MiB before buffering it', () => {
  const head = Buffer.alloc(4)
  head.writeUInt32BE(16 * 1024 * 1024 + 1)
  expect(() => new FrameReader().push(head)).toThrow(RangeError)
})

test('frameWriter counts the bytes a socket has not taken yet, until its drain takes them', () => {
  let room = 6
  const written: Uint8Array[] = []
  const out = frameWriter({
    write(data) {
      const n = Math.min(room, data.length)
      room -= n
      written.push(data.subarray(0, n))
      return n
    },
  })
  out.send({ a: 1 })
  out.send({ b: 2 })
  const total = encodeFrame({ a: 1 }).length + encodeFrame({ b: 2 }).length
  expect(out.queued).toBe(total - 6)
  room = Infinity
  out.drain()
  expect(out.queued).toBe(0)
  expect(new FrameReader().push(Buffer.concat(written))).toEqual([{ a: 1 }, { b: 2 }])
})
