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
