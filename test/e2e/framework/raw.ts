/** Sends raw bytes to a loopback port and returns everything the server answered before closing (or `waitMs`). */
export async function rawRequest(port: number, text: string, waitMs = 700): Promise<string> {
  let out = ''
  return await new Promise((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined
    void Bun.connect({
      hostname: '127.0.0.1',
      port,
      socket: {
        open(s) {
          s.write(text)
          timer = setTimeout(() => s.end(), waitMs)
        },
        data(_s, d) {
          out += d.toString()
        },
        close() {
          clearTimeout(timer)
          resolve(out)
        },
        error() {
          clearTimeout(timer)
          resolve(out)
        },
      },
    }).catch(() => resolve(out))
  })
}

/**
 * A raw upstream on a free loopback port that keeps the request heads exactly as they arrived (a
 * Bun.serve upstream would join repeated lines) and answers each with `answer(head, body)` (default:
 * `ok`). A body is read by the request's Content-Length or chunked framing (kept as sent, chunks and
 * all), so keep-alive connections stay in step.
 */
export function startRawHeadUpstream(
  answer: (head: string, body: string) => string = () => 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
): { port: number; heads: string[]; stop(): void } {
  const heads: string[] = []
  const listener = Bun.listen<{ buf: string }>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(s) {
        s.data = { buf: '' }
      },
      data(s, d) {
        s.data.buf += d.toString('latin1')
        for (;;) {
          const end = s.data.buf.indexOf('\r\n\r\n')
          if (end === -1) return
          const head = s.data.buf.slice(0, end)
          let bodyEnd = end + 4 + Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0)
          if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
            const last = s.data.buf.indexOf('0\r\n\r\n', end + 4)
            if (last === -1) return
            bodyEnd = last + 5
          }
          if (s.data.buf.length < bodyEnd) return
          heads.push(head)
          const body = s.data.buf.slice(end + 4, bodyEnd)
          s.data.buf = s.data.buf.slice(bodyEnd)
          s.write(answer(head, body))
        }
      },
    },
  })
  return { port: listener.port, heads, stop: () => listener.stop(true) }
}

/**
 * A raw upstream (startRawHeadUpstream) that answers every request with what it received, as JSON
 * `{ upstream: name, head, body }` (no body for HEAD, as HTTP has it).
 */
export function startEchoUpstream(name: string): { port: number; heads: string[]; stop(): void } {
  return startRawHeadUpstream((head, body) => {
    // ASCII only (obs-text bytes escaped): the socket writes strings as UTF-8, and the length counts characters.
    const json = JSON.stringify({ upstream: name, head, body }).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    const fields = `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${json.length}\r\n\r\n`
    return head.startsWith('HEAD ') ? fields : fields + json
  })
}

/**
 * Header lines (`Name: value`) grouped by lower-case name, values in their order, names sorted: the
 * same for two heads that carry the same fields whatever the order of names and their case.
 */
export function headerGroups(lines: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    ;(out[line.slice(0, colon).toLowerCase()] ??= []).push(line.slice(colon + 1).trim())
  }
  return Object.fromEntries(Object.entries(out).sort(([x], [y]) => (x < y ? -1 : 1)))
}

/**
 * Splits what a server wrote on one connection into final responses framed by Content-Length
 * (interim 1xx heads are skipped); `bodiless(i)` names the ones that answer HEAD.
 */
export function responses(text: string, bodiless: (i: number) => boolean = () => false): { status: number; headers: string; body: string }[] {
  const out: { status: number; headers: string; body: string }[] = []
  let rest = text
  while (rest.length) {
    const end = rest.indexOf('\r\n\r\n')
    if (end === -1) break
    const headers = rest.slice(0, end)
    const status = Number(headers.slice(9, 12))
    const length = bodiless(out.length) || status < 200 ? 0 : Number(/content-length: (\d+)/i.exec(headers)?.[1] ?? 0)
    if (status >= 200) out.push({ status, headers, body: rest.slice(end + 4, end + 4 + length) })
    rest = rest.slice(end + 4 + length)
  }
  return out
}
