import { expect, test } from 'bun:test'
import { METHODS } from 'node:http'
import { hasNode, llhttp } from './llhttp-reference.ts'
import { DEFAULT_LIMITS, findHeadEnd, HeadRefusal, parseHead } from './parse-head.ts'
import { CASES, decide } from './parse-head.cases.ts'
import { xorshift } from '../../test/helpers/xorshift.ts'

/**
 * Mutated heads through the parser: it must never throw anything but a refusal, and what it accepts
 * must be well-formed. `WARREN_FUZZ_COUNT` sets how many (the soak run uses millions).
 */
const COUNT = Number(process.env.WARREN_FUZZ_COUNT ?? 1_000_000)
const KNOWN_METHODS = new Set(METHODS)
const SPECIAL = [13, 10, 32, 9, 58, 0, 0x80, 44, 59, 47, 0x7f, 48, 102]

const seeds = CASES.map((c) => Buffer.from(c.raw, 'latin1'))

function mutate(rand: () => number): Buffer {
  let b = Buffer.from(seeds[Math.floor(rand() * seeds.length)]!)
  const edits = 1 + Math.floor(rand() * 4)
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rand() * (b.length + 1))
    const kind = Math.floor(rand() * 6)
    const byte = rand() < 0.6 ? SPECIAL[Math.floor(rand() * SPECIAL.length)]! : Math.floor(rand() * 256)
    if (kind === 0 && at < b.length) b[at] = byte
    else if (kind === 1) b = Buffer.concat([b.subarray(0, at), Buffer.of(byte), b.subarray(at)])
    else if (kind === 2 && at < b.length) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)])
    else if (kind === 3) b = b.subarray(0, at)
    else if (kind === 4) {
      // Repeat a line: duplicates of Host, Content-Length, Transfer-Encoding are where smuggling hides.
      const lineEnd = b.indexOf(10, at)
      const lineStart = b.lastIndexOf(10, Math.max(0, at - 1)) + 1
      if (lineEnd > lineStart) b = Buffer.concat([b.subarray(0, lineEnd + 1), b.subarray(lineStart, lineEnd + 1), b.subarray(lineEnd + 1)])
    } else if (at < b.length) b[at] = b[at]! ^ (1 << Math.floor(rand() * 8))
  }
  return b
}

test(`${COUNT} mutated heads: refusals only, and every accepted head is well-formed`, () => {
  const rand = xorshift(0x5eed)
  let accepted = 0
  let refused = 0
  for (let n = 0; n < COUNT; n++) {
    const buf = mutate(rand)
    let end: number
    try {
      end = findHeadEnd(buf, 0, buf.length, 0, DEFAULT_LIMITS)
      if (end === -1) continue
      const head = parseHead(buf, 0, end)
      accepted++
      if (head.end > buf.length || head.start > head.end) throw new Error('offsets out of range')
      for (let k = 0; k < head.lines.length; k += 4)
        if (!(head.start < head.lines[k]! && head.lines[k]! < head.lines[k + 1]! && head.lines[k + 1]! < head.lines[k + 2]! + 1 && head.lines[k + 2]! <= head.lines[k + 3]! && head.lines[k + 3]! < head.end))
          throw new Error('header offsets out of order')
      if (head.chunked && head.contentLength !== -1) throw new Error('both framings')
    } catch (err) {
      if (!(err instanceof HeadRefusal)) throw new Error(`${err} for ${JSON.stringify(buf.toString('latin1'))}`)
      refused++
    }
  }
  expect(accepted).toBeGreaterThan(COUNT / 50)
  expect(refused).toBeGreaterThan(COUNT / 20)
}, 600_000)

test.skipIf(!hasNode())('5000 mutated heads: llhttp accepts everything we accept', async () => {
  const rand = xorshift(0xd1ff)
  const sample: Buffer[] = []
  while (sample.length < 5000) {
    const buf = mutate(rand)
    // Only the head: llhttp would read body bytes without framing as the next request.
    const got = decide(buf)
    // llhttp knows a fixed method list; RFC 9110 allows any token, and so do we.
    if (got.status === 'ok' && KNOWN_METHODS.has(got.head!.method)) sample.push(buf.subarray(0, got.head!.end))
  }
  const ref = await llhttp(sample)
  const differences = sample.flatMap((buf, k) => (ref[k]!.ok ? [] : [`${ref[k]!.error}: ${JSON.stringify(buf.toString('latin1'))}`]))
  expect(differences.slice(0, 10)).toEqual([])
}, 60_000)
