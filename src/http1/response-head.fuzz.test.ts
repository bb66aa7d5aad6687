import { expect, test } from 'bun:test'
import { findHeadEnd, H1ParseError, parseResponseHead } from '../proxy/h1/parse.ts'
import { RESPONSE_CASES } from './response-head.cases.ts'
import { scanResponseHead } from './response-head.ts'
import { xorshift } from '../../test/helpers/xorshift.ts'

/**
 * Mutated upstream heads through the relay's scan and the pipeline's parser: the same accept/refuse
 * decision (but for control characters in field values, which only the scan refuses) and framing facts for every one, only H1ParseError thrown, and what the scan writes for the
 * client parses again to the same status, length and end-to-end fields. `WARREN_FUZZ_COUNT` sets how many.
 */
const COUNT = Number(process.env.WARREN_FUZZ_COUNT ?? 200_000)
const SEED = Number(process.env.WARREN_FUZZ_SEED ?? Date.now() % 100_000)
const SPECIAL = [13, 10, 32, 9, 58, 0, 0x80, 44, 59, 0x7f, 48, 49, 53, 65, 99, 107]

const seeds = RESPONSE_CASES.map((c) => Buffer.from(c.text, 'latin1'))

function mutate(rand: () => number): Buffer {
  let b = Buffer.from(seeds[Math.floor(rand() * seeds.length)]!)
  const edits = 1 + Math.floor(rand() * 3)
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rand() * (b.length + 1))
    const kind = Math.floor(rand() * 4)
    const byte = rand() < 0.6 ? SPECIAL[Math.floor(rand() * SPECIAL.length)]! : Math.floor(rand() * 256)
    if (kind === 0 && at < b.length) b[at] = byte
    else if (kind === 1) b = Buffer.concat([b.subarray(0, at), Buffer.of(byte), b.subarray(at)])
    else if (kind === 2 && at < b.length) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)])
    else if (kind === 3) {
      // Repeat a line: a second Content-Length, Connection or Transfer-Encoding is where framing splits.
      const start = b.lastIndexOf(10, at - 1) + 1
      const end = b.indexOf(10, at)
      if (start > 0 && end !== -1) b = Buffer.concat([b.subarray(0, end + 1), b.subarray(start, end + 1), b.subarray(end + 1)])
    }
  }
  return b
}

/**
 * A control character (other than HTAB) inside a field line: the scan refuses it as RFC 9110 §5.5
 * says (as the request parser does), where `Headers` lets all but NUL, CR and LF through.
 */
function controlInFields(text: string): boolean {
  const lines = text.split('\n').slice(1)
  return lines.some((line) => /[\x00-\x08\x0a-\x1f\x7f]/.test(line.endsWith('\r') ? line.slice(0, -1) : line))
}

/** End-to-end fields as the client gets them, Date and Content-Length aside (compared on their own). */
function fields(headers: Headers): string[] {
  return [...headers].filter(([name]) => name !== 'date' && name !== 'content-length' && name !== 'warren-error-code').map(([n, v]) => `${n}: ${v}`)
}

test(`${COUNT} mutated response heads (seed ${SEED}): the scan decides as the parser does`, () => {
  const rand = xorshift(SEED)
  let accepted = 0
  for (let n = 0; n < COUNT; n++) {
    const buf = mutate(rand)
    const end = findHeadEnd(buf, 0)
    if (end === -1) continue
    const text = buf.toString('latin1', 0, end)
    let parsed: ReturnType<typeof parseResponseHead> | undefined
    let parseError: unknown
    try {
      parsed = parseResponseHead(text)
    } catch (err) {
      parseError = err
    }
    let head: ReturnType<typeof scanResponseHead> | undefined
    let scanError: unknown
    try {
      head = scanResponseHead(buf, end)
    } catch (err) {
      scanError = err
    }
    const context = JSON.stringify(text)
    if (parseError !== undefined) expect(parseError, context).toBeInstanceOf(H1ParseError)
    if (scanError !== undefined) expect(scanError, context).toBeInstanceOf(H1ParseError)
    expect(head === undefined, context).toBe(parsed === undefined || controlInFields(text))
    if (!head || !parsed) continue
    accepted++
    expect([head.status, head.minor, head.keepAlive, head.contentLength, head.chunked], context).toEqual([parsed.status, parsed.minor, parsed.keepAlive, parsed.contentLength, parsed.chunked])
    // What the client gets reads back the same.
    const out = Buffer.from(head.bytes('')).toString('latin1')
    const again = parseResponseHead(out)
    expect(again.status, context).toBe(parsed.status)
    expect(again.contentLength, context).toBe(parsed.status === 204 ? -1 : parsed.contentLength)
    expect(fields(again.headers).sort(), context).toEqual(fields(parsed.headers).sort())
  }
  console.log(`response head fuzz: seed ${SEED}, ${COUNT} inputs, ${accepted} accepted by both`)
  expect(accepted).toBeGreaterThan(COUNT / 20)
}, 120_000)
