/** Runs curl (a real client) and returns status, headers and body. */
export async function curl(args: string[]): Promise<{ status: number; headers: Record<string, string>; body: string; exitCode: number }> {
  const proc = Bun.spawn(['curl', '-s', '-S', '-D', '-', '--max-time', '20', ...args], { stdout: 'pipe', stderr: 'pipe' })
  const out = await new Response(proc.stdout).text()
  const exitCode = await proc.exited
  // With redirects or 100-continue there can be several heads; the last one is the answer.
  const heads = out.split(/\r\n\r\n/)
  let i = 0
  while (i + 1 < heads.length && /^HTTP\/[\d.]+ 1\d\d/.test(heads[i]!)) i++
  const head = heads[i] ?? ''
  const body = heads.slice(i + 1).join('\r\n\r\n')
  const [statusLine, ...lines] = head.split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const c = line.indexOf(':')
    if (c > 0) headers[line.slice(0, c).toLowerCase()] = line.slice(c + 1).trim()
  }
  return { status: Number(statusLine?.split(' ')[1] ?? 0), headers, body, exitCode }
}
