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
 * Splits what a server wrote on one connection into final responses framed by Content-Length
 * (interim 1xx heads are skipped); `bodiless(i)` names the ones that answer HEAD.
 */
export function splitResponses(text: string, bodiless: (i: number) => boolean = () => false): { status: number; head: string; body: string }[] {
  const out: { status: number; head: string; body: string }[] = []
  let rest = text
  while (rest.length) {
    const end = rest.indexOf('\r\n\r\n')
    if (end === -1) break
    const head = rest.slice(0, end)
    const status = Number(head.slice(9, 12))
    const length = bodiless(out.length) || status < 200 ? 0 : Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0)
    if (status >= 200) out.push({ status, head, body: rest.slice(end + 4, end + 4 + length) })
    rest = rest.slice(end + 4 + length)
  }
  return out
}
