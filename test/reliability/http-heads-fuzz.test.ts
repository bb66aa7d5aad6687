/**
 * HTTP request heads fuzzed over loopback against the compiled edge's plaintext port. A corpus of
 * valid and hostile heads (CL+TE, duplicate Content-Length, obs-fold, bare LF/CR, NUL, huge headers,
 * bad chunk sizes, …) is sent as-is, then mutated, on fresh and keep-alive connections. Behind the
 * edge sits a marker upstream that parses strictly what the edge forwards.
 *
 * What must hold for every input:
 * - the edge stays up and never answers 5xx with ERR_WARREN_3999 (an internal error);
 * - every request the upstream parses is well-formed (no obs-fold, bare CR/LF, NUL, CL+TE, disagreeing
 *   Content-Length, bad chunk framing) and carries the edge's X-Forwarded-For: a request without it
 *   was read by the upstream out of bytes the edge relayed as a body (a desync, i.e. smuggling);
 * - hostile corpus entries sent unmutated are refused with 4xx and reach the upstream not at all.
 *
 * Counts: WARREN_FUZZ_HTTP_COUNT inputs (default 10,000: 8-10 s on an idle 2-core box; bench/soak
 * passes 1,000,000), WARREN_FUZZ_SEED as for the in-process fuzzers.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { TCPSocketListener } from 'bun'
import { envInt, fuzzSettings, makeRng, type Rng } from '../helpers/fuzz.ts'
import { mb, memoryOf, sampleRss } from '../e2e/framework/memory.ts'
import { startEdge, type Edge } from '../e2e/framework/process.ts'

const { seed: SEED } = fuzzSettings()
const COUNT = envInt('WARREN_FUZZ_HTTP_COUNT') ?? 10_000
/** Connections in flight at once. */
const CONCURRENCY = envInt('WARREN_FUZZ_HTTP_CONCURRENCY') ?? 48
/** A default run stops early on a very slow machine; an explicit count runs them all. */
const TIME_BUDGET_MS = envInt('WARREN_FUZZ_HTTP_COUNT') === undefined ? 40_000 : Infinity
const MAX_HEADER_BYTES = 8192

const APP = 'app.warren.localhost'
const EDGE_ANSWERED = 'edge.warren.localhost'
const H = `Host: ${APP}\r\n`
const SMUGGLED = `GET /smuggled HTTP/1.1\r\n${H}\r\n`

// ---------------------------------------------------------------------------------------------
// The marker upstream: a raw TCP server with a strict HTTP/1.1 request parser.
// ---------------------------------------------------------------------------------------------

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const REQUEST_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [\x21-\x7e\x80-\xff]+ HTTP\/1\.[01]$/
/** CR, LF and NUL: what can split or end a line, so a value carrying one reframes the message. */
const FRAMING_CTL = /[\r\n\x00]/
/**
 * Other controls (RFC 9110 excludes them from field values too). Bun.serve, the current plaintext
 * front, passes DEL (0x7F) through: counted and printed, not failed, since it cannot split a message.
 */
const OTHER_CTL = /[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]/
const RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Up: 1\r\n\r\nok'

interface Marker {
  server: TCPSocketListener<{ buf: Buffer }>
  /** Requests the upstream parsed completely. */
  requests: number
  /** What the edge should never have forwarded (each with the bytes that showed it). */
  violations: string[]
  /** Forwarded field values with a control character other than CR, LF and NUL. */
  otherCtl: number
}

/**
 * Strict parse of one request at the start of `buf`: its length, 0 when incomplete, or a violation.
 * `lenient` counts values with a control character that cannot reframe the message.
 */
function parseRequest(buf: Buffer, lenient: { otherCtl: number }): number | string {
  const end = buf.indexOf('\r\n\r\n')
  if (end < 0) {
    if (buf.length > 64 * 1024) return 'head over 64 KiB'
    return /\n/.test(buf.toString('latin1').replace(/\r\n/g, '')) ? 'bare LF in a head' : 0
  }
  const head = buf.subarray(0, end).toString('latin1')
  if (/\r(?!\n)|(?<!\r)\n/.test(head)) return 'bare CR or LF in the head'
  const [line, ...fields] = head.split('\r\n')
  if (!REQUEST_LINE.test(line!)) return `bad request line ${JSON.stringify(line)}`
  const seen = new Map<string, string[]>()
  for (const f of fields) {
    if (/^[ \t]/.test(f)) return 'obs-fold'
    const c = f.indexOf(':')
    if (c <= 0 || !TOKEN.test(f.slice(0, c))) return `bad field name in ${JSON.stringify(f.slice(0, 80))}`
    const value = f.slice(c + 1).replace(/^[ \t]+|[ \t]+$/g, '')
    if (FRAMING_CTL.test(value)) return `CR, LF or NUL in ${JSON.stringify(f.slice(0, 80))}`
    if (OTHER_CTL.test(value)) lenient.otherCtl++
    const name = f.slice(0, c).toLowerCase()
    seen.set(name, [...(seen.get(name) ?? []), value])
  }
  if ((seen.get('host') ?? []).length !== 1) return `${(seen.get('host') ?? []).length} Host fields`
  if (!seen.has('x-forwarded-for')) return `a request the edge never forwarded: ${JSON.stringify(line)}`
  const cl = seen.get('content-length') ?? []
  const te = seen.get('transfer-encoding') ?? []
  if (cl.length && te.length) return 'Content-Length with Transfer-Encoding'
  if (new Set(cl).size > 1) return `disagreeing Content-Length ${cl.join(' / ')}`
  let at = end + 4
  if (te.length) {
    if (te.join(',').toLowerCase().replace(/\s/g, '') !== 'chunked') return `Transfer-Encoding ${te.join(', ')}`
    for (;;) {
      const eol = buf.indexOf('\r\n', at)
      if (eol < 0) return buf.length - at > 1024 ? 'chunk size line over 1 KiB' : 0
      const sizeLine = buf.subarray(at, eol).toString('latin1')
      const m = /^([0-9a-fA-F]{1,8})(?:[ \t]*;[^\r\n\x00]*)?$/.exec(sizeLine)
      if (!m) return `bad chunk size line ${JSON.stringify(sizeLine.slice(0, 40))}`
      const size = parseInt(m[1]!, 16)
      at = eol + 2
      if (size === 0) {
        // Trailer fields, then the empty line.
        for (;;) {
          const t = buf.indexOf('\r\n', at)
          if (t < 0) return 0
          const trailer = buf.subarray(at, t).toString('latin1')
          at = t + 2
          if (trailer === '') return at
          if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\x00-\x08\x0a-\x1f\x7f]*$/.test(trailer)) return `bad trailer ${JSON.stringify(trailer.slice(0, 40))}`
        }
      }
      if (buf.length < at + size + 2) return 0
      if (buf[at + size] !== 13 || buf[at + size + 1] !== 10) return 'chunk data not followed by CRLF'
      at += size + 2
    }
  }
  if (cl.length) {
    if (!/^\d{1,15}$/.test(cl[0]!)) return `Content-Length ${JSON.stringify(cl[0])}`
    const n = Number(cl[0])
    return buf.length < at + n ? 0 : at + n
  }
  return at
}

function startMarker(): Marker {
  const marker: Marker = { requests: 0, violations: [], otherCtl: 0, server: undefined as unknown as Marker['server'] }
  marker.server = Bun.listen<{ buf: Buffer }>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(s) {
        s.data = { buf: Buffer.alloc(0) }
      },
      data(s, chunk) {
        s.data.buf = Buffer.concat([s.data.buf, chunk])
        for (;;) {
          const r = parseRequest(s.data.buf, marker)
          if (r === 0) return
          if (typeof r === 'string') {
            marker.violations.push(`${r}; bytes: ${JSON.stringify(s.data.buf.subarray(0, 300).toString('latin1'))}`)
            s.data.buf = Buffer.alloc(0)
            return void s.end()
          }
          marker.requests++
          s.data.buf = s.data.buf.subarray(r)
          s.write(RESPONSE)
        }
      },
      error() {},
    },
  })
  return marker
}

// ---------------------------------------------------------------------------------------------
// The corpus.
// ---------------------------------------------------------------------------------------------

const VALID: string[] = [
  `GET /v/get HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
  `POST /v/cl HTTP/1.1\r\n${H}Content-Length: 5\r\nConnection: close\r\n\r\nhello`,
  `POST /v/chunked HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n`,
  `GET /v/10 HTTP/1.0\r\n${H}\r\n`,
  `GET http://${APP}/v/absolute HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
  `GET /v/headers?x=1&y=%20 HTTP/1.1\r\n${H}Accept: */*\r\nUser-Agent: fuzz/1\r\nX-A: a\r\nX-B: b\tc\r\nCookie: k=v\r\nConnection: close\r\n\r\n`,
  `GET /v/edge HTTP/1.1\r\nHost: ${EDGE_ANSWERED}\r\nConnection: close\r\n\r\n`,
  // A Connection option that is not a token (obs-text): Headers.delete threw on it, a 500.
  `GET /v/conn HTTP/1.1\r\n${H}Connection: cl\xbcse, close\r\n\r\n`,
  `DELETE /v/del HTTP/1.1\r\n${H}Content-Length: 0\r\nConnection: close\r\n\r\n`,
]

/**
 * Requests the edge must refuse, none of which may reach the upstream whole. A bad head gets a 4xx
 * (505 for a version it cannot read); a bad chunked body (`body: true`) is found after the head was
 * passed on, so the upstream never gets a complete request and the client gets 400 ERR_WARREN_3007.
 */
const HOSTILE: { desc: string; text: string; body?: true }[] = [
  { desc: 'CL.TE', text: `POST /h HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}` },
  { desc: 'TE.CL', text: `POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n${SMUGGLED}\r\n0\r\n\r\n` },
  { desc: 'two different Content-Length', text: `POST /h HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 43\r\n\r\nhello${SMUGGLED}` },
  { desc: 'Content-Length list', text: `POST /h HTTP/1.1\r\n${H}Content-Length: 5, 43\r\n\r\nhello${SMUGGLED}` },
  { desc: 'Content-Length with a sign', text: `POST /h HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello${SMUGGLED}` },
  { desc: 'Transfer-Encoding: chunked, identity', text: `POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${SMUGGLED}` },
  { desc: 'unknown Transfer-Encoding', text: `POST /h HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}` },
  { desc: 'obs-fold', text: `GET /h HTTP/1.1\r\n${H}X-Folded: a\r\n b\r\n\r\n` },
  { desc: 'obs-fold Transfer-Encoding', text: `POST /h HTTP/1.1\r\n${H}Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${SMUGGLED}` },
  { desc: 'bare LF line ends', text: `GET /h HTTP/1.1\n${H.replace('\r\n', '\n')}X-A: 1\n\n` },
  { desc: 'bare CR in a field', text: `GET /h HTTP/1.1\r\n${H}X-A: 1\rX-B: 2\r\n\r\n` },
  { desc: 'NUL in a field value', text: `GET /h HTTP/1.1\r\n${H}X-A: a\0b\r\n\r\n` },
  { desc: 'NUL in the target', text: `GET /h\0x HTTP/1.1\r\n${H}\r\n` },
  { desc: 'space before the colon', text: `POST /h HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${SMUGGLED}` },
  { desc: 'a field name that is not a token', text: `GET /h HTTP/1.1\r\n${H}X(A): 1\r\n\r\n` },
  { desc: 'headers over max_header_bytes', text: `GET /h HTTP/1.1\r\n${H}X-Big: ${'x'.repeat(MAX_HEADER_BYTES + 100)}\r\n\r\n` },
  { desc: 'many small headers over max_header_bytes', text: `GET /h HTTP/1.1\r\n${H}${'X-N: 1\r\n'.repeat(2000)}\r\n` },
  { desc: 'chunk size not hex', text: `POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n${SMUGGLED}`, body: true },
  { desc: 'negative chunk size', text: `POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n-1\r\nhello\r\n0\r\n\r\n${SMUGGLED}`, body: true },
  { desc: 'chunk size 0x-prefixed', text: `POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n${SMUGGLED}`, body: true },
  { desc: 'chunk size overflowing 64 bits', text: `POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n${SMUGGLED}`, body: true },
  { desc: 'chunk data longer than its size', text: `POST /h HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n${SMUGGLED}`, body: true },
  { desc: 'no Host', text: `GET /h HTTP/1.1\r\nConnection: close\r\n\r\n` },
  { desc: 'an empty Host', text: `GET /h HTTP/1.1\r\nHost: \r\n\r\n` },
  // Found by bench/soak (input #979688 of seed 1059043376): the fallback URL of the refusal threw.
  { desc: 'an empty Host and a backslash target', text: `GET /\\ HTTP/1.1\r\nHost: \r\n\r\n` },
  { desc: 'two Host fields', text: `GET /h HTTP/1.1\r\nHost: other.warren.localhost\r\n${H}\r\n` },
  { desc: 'HTTP/1.2 request line', text: `GET /h HTTP/1.2\r\n${H}\r\n` },
  { desc: 'a space in the target', text: `GET /h x HTTP/1.1\r\n${H}\r\n` },
]

// ---------------------------------------------------------------------------------------------
// Mutators.
// ---------------------------------------------------------------------------------------------

const INSERTS = ['\r\n', '\n', '\r', '\0', ' ', '\t', '\r\n ', ':', ',', '\x7f', '\xff', 'chunked', '0\r\n\r\n', 'Transfer-Encoding: chunked\r\n', 'Content-Length: 0\r\n', 'Content-Length: 7\r\n', 'Content-Length: 99999\r\n', 'Host: x\r\n', 'Connection: keep-alive\r\n', 'Expect: 100-continue\r\n', 'Upgrade: websocket\r\nConnection: Upgrade\r\n', SMUGGLED]

type Mutator = (rng: Rng, s: string) => string
const MUTATORS: Mutator[] = [
  function insert(rng, s) {
    const at = rng.int(s.length + 1)
    return s.slice(0, at) + rng.pick(INSERTS) + s.slice(at)
  },
  function replaceByte(rng, s) {
    const at = rng.int(s.length)
    return s.slice(0, at) + String.fromCharCode(rng.int(256)) + s.slice(at + 1)
  },
  function deleteRange(rng, s) {
    const at = rng.int(s.length)
    return s.slice(0, at) + s.slice(at + 1 + rng.int(8))
  },
  function truncate(rng, s) {
    return s.slice(0, rng.int(s.length + 1))
  },
  function duplicateLine(rng, s) {
    const lines = s.split('\r\n')
    const i = rng.int(lines.length)
    lines.splice(i, 0, lines[i]!)
    return lines.join('\r\n')
  },
  function swapLines(rng, s) {
    const lines = s.split('\r\n')
    const i = rng.int(lines.length)
    const j = rng.int(lines.length)
    ;[lines[i], lines[j]] = [lines[j]!, lines[i]!]
    return lines.join('\r\n')
  },
  function changeCase(rng, s) {
    const at = rng.int(s.length)
    const n = 1 + rng.int(20)
    const part = s.slice(at, at + n)
    return s.slice(0, at) + (rng.chance(0.5) ? part.toUpperCase() : part.toLowerCase()) + s.slice(at + n)
  },
  function lineEnds(rng, s) {
    return rng.chance(0.5) ? s.replaceAll('\r\n', '\n') : s.replace('\r\n', rng.pick(['\n', '\r', '\n\r', '\r\r\n']))
  },
  function bigField(rng, s) {
    const at = s.indexOf('\r\n') + 2
    return s.slice(0, at) + `X-Big: ${'y'.repeat(rng.pick([100, MAX_HEADER_BYTES - 200, MAX_HEADER_BYTES, MAX_HEADER_BYTES * 4]))}\r\n` + s.slice(at)
  },
  function splice(rng, s) {
    const other = rng.pick([...VALID, ...HOSTILE.map((h) => h.text)])
    return s.slice(0, rng.int(s.length + 1)) + other.slice(rng.int(other.length + 1))
  },
  function chunkSize(rng, s) {
    return s.replace(/\r\n\r\n([0-9a-fA-F]+)/, (_m, n: string) => `\r\n\r\n${rng.pick(['', ' ', '00000000000', 'fffffffff', `${n} `, `${n};`, `${n}\0`, '-0', `+${n}`, `${n}x`])}`)
  },
]

function mutate(rng: Rng, s: string): string {
  for (let k = 1 + (rng.chance(0.3) ? rng.int(4) : 0); k > 0; k--) s = rng.pick(MUTATORS)(rng, s)
  return s
}

// ---------------------------------------------------------------------------------------------
// The client side.
// ---------------------------------------------------------------------------------------------

/** Sends `parts` on one connection (each after the previous answer or a pause) and returns all it read. */
async function exchange(port: number, parts: string[]): Promise<string> {
  let out = ''
  const { promise, resolve } = Promise.withResolvers<void>()
  let idle: ReturnType<typeof setTimeout> | undefined
  let next = 0
  const socket = await Bun.connect({
    hostname: '127.0.0.1',
    port,
    socket: {
      data(s, d) {
        out += d.toString('latin1')
        arm(s)
      },
      close: () => resolve(),
      error: () => resolve(),
      connectError: () => resolve(),
    },
  }).catch(() => undefined)
  if (!socket) return out
  function arm(s: NonNullable<typeof socket>) {
    clearTimeout(idle)
    // After an answer (or a quiet moment) send the next part; after the last one, give the edge a
    // moment to answer or close, then hang up.
    idle = setTimeout(
      () => {
        if (next < parts.length) {
          s.write(Buffer.from(parts[next++]!, 'latin1'))
          arm(s)
        } else s.end()
      },
      next < parts.length ? 30 : 120,
    )
  }
  socket.write(Buffer.from(parts[next++]!, 'latin1'))
  arm(socket)
  const hard = setTimeout(() => socket.end(), 3000)
  await promise
  clearTimeout(idle)
  clearTimeout(hard)
  return out
}

/** Status codes and Warren-Error-Codes of every response in `text`. */
function answers(text: string): { status: number; code: string | undefined }[] {
  const out: { status: number; code: string | undefined }[] = []
  for (const m of text.matchAll(/HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n((?:[^\r\n]+\r\n)*)\r\n/g)) {
    out.push({ status: Number(m[1]), code: /^warren-error-code:\s*(\S+)/im.exec(m[2]!)?.[1] })
  }
  return out
}

// ---------------------------------------------------------------------------------------------

const marker = startMarker()
let edge: Edge
beforeAll(async () => {
  edge = await startEdge({
    config: `http:\n  max_header_bytes: ${MAX_HEADER_BYTES}\n`,
    policies: {
      'app.yml': `url: http://${APP}\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: forward-external, config: {url: "http://127.0.0.1:${marker.server.port}"}}]\n`,
      'edge.yml': `url: http://${EDGE_ANSWERED}\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response, config: {body: "edge"}}]\n`,
    },
  })
})
afterAll(async () => {
  await edge?.stop()
  marker.server.stop(true)
})

test.each(HOSTILE)('hostile head, unmutated: $desc → refused, nothing reaches the upstream', async ({ text, body }) => {
  const before = marker.requests
  const got = answers(await exchange(edge.httpPort, [text]))
  expect(got.length).toBeGreaterThanOrEqual(1)
  const { status, code } = got[0]!
  if (body) expect({ status, code }).toEqual({ status: 400, code: 'ERR_WARREN_3007' })
  // 4xx, or 505 for a request line whose version cannot be read.
  else expect(status === 505 || (status >= 400 && status < 500)).toBe(true)
  expect(marker.requests - before).toBe(0)
  expect(marker.violations).toEqual([])
})

test.each(VALID.map((text) => ({ text, first: text.split('\r\n')[0] })))('valid head reaches its endpoint: $first', async ({ text }) => {
  const got = answers(await exchange(edge.httpPort, [text]))
  expect(got.length).toBeGreaterThanOrEqual(1)
  expect(got.every((a) => a.status === 200)).toBe(true)
  expect(marker.violations).toEqual([])
})

test(`${COUNT} mutated heads (seed ${SEED}): the edge stays up, no ERR_WARREN_3999, the upstream sees only well-formed requests`, async () => {
  const rng = makeRng(SEED)
  const statuses = new Map<number, number>()
  const internal: string[] = []
  let sent = 0
  let noAnswer = 0
  const rss = sampleRss(edge.proc.pid)
  const started = performance.now()
  const one = async (i: number) => {
    const seed = rng.chance(0.5) ? rng.pick(VALID) : rng.pick(HOSTILE).text
    const input = mutate(rng, seed)
    // A third of the inputs ride a keep-alive connection after (and before) a valid request.
    const parts = rng.chance(0.33) ? [`GET /ka HTTP/1.1\r\n${H}\r\n`, input, `GET /ka-after HTTP/1.1\r\n${H}\r\n`] : [input]
    const got = answers(await exchange(edge.httpPort, parts))
    if (got.length === 0) noAnswer++
    for (const a of got) {
      statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1)
      if (a.code === 'ERR_WARREN_3999') internal.push(`input #${i}: ${JSON.stringify(input.slice(0, 300))}`)
    }
  }
  const workers = Array.from({ length: CONCURRENCY }, async () => {
    while (sent < COUNT && performance.now() - started < TIME_BUDGET_MS) await one(sent++)
  })
  await Promise.all(workers)
  const ms = Math.round(performance.now() - started)
  const peak = rss.stop()
  await Bun.sleep(1000)
  const settled = memoryOf(edge.proc.pid).rss
  console.log(
    `http heads fuzz: seed ${SEED}, ${sent} inputs in ${ms} ms (${CONCURRENCY} connections at a time); upstream parsed ${marker.requests} requests; ` +
      `answers by status ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}; ${noAnswer} connections closed without an answer; ` +
      `${marker.otherCtl} forwarded requests had a control character other than CR/LF/NUL in a field value; ` +
      `edge RSS peak ${mb(peak)} MB, settled ${mb(settled)} MB`,
  )
  expect(internal.slice(0, 5)).toEqual([])
  expect(marker.violations.slice(0, 5)).toEqual([])
  // The edge is still up and still serves.
  expect(edge.proc.exitCode).toBeNull()
  const after = answers(await exchange(edge.httpPort, [VALID[0]!]))
  expect(after.map((a) => a.status)).toEqual([200])
  // Both kinds of outcome happened: the fuzzer is not stuck on one branch.
  expect(statuses.get(200) ?? 0).toBeGreaterThan(0)
  expect(statuses.get(400) ?? 0).toBeGreaterThan(0)
  expect(sent).toBeGreaterThanOrEqual(Math.min(COUNT, 1000))
  // Refused and half-sent requests leave nothing behind.
  expect(settled).toBeLessThan(256 * 1024 * 1024)
}, Math.max(120_000, COUNT * 50))
