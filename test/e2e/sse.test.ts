import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { edgeFlags, startAgent } from './framework/agent.ts'
import { curl } from './framework/curl.ts'
import { startEdge, type Edge } from './framework/process.ts'

/*
 * on_event_stream_message through the compiled binary: a real upstream streams server-sent events
 * one at a time under the test's control, a real client (curl -N) reads them through the edge.
 */

/** One open event stream of the upstream: the test writes its messages. */
interface OpenStream {
  send(text: string): void
  close(): void
}

const waiting: ((s: OpenStream) => void)[] = []
const opened: OpenStream[] = []
const encoder = new TextEncoder()

const upstream = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  idleTimeout: 0,
  fetch(req) {
    const url = new URL(req.url)
    if (url.pathname === '/text') return new Response('data: 123-45-6789\n\n', { headers: { 'content-type': 'text/plain' } })
    if (url.pathname === '/fixed')
      return new Response(': warm-up\r\nretry: 300\r\n\r\nevent: note\r\ndata: call 555-12-3456\r\ndata: or bob@example.org\r\nid: 2\r\n\r\n', {
        headers: { 'content-type': 'text/event-stream' },
      })
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        const stream: OpenStream = { send: (text) => controller.enqueue(encoder.encode(text)), close: () => controller.close() }
        const waiter = waiting.shift()
        if (waiter) waiter(stream)
        else opened.push(stream)
      },
    })
    return new Response(body, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } })
  },
})

/** The next stream the upstream opens. */
function nextStream(): Promise<OpenStream> {
  const ready = opened.shift()
  if (ready) return Promise.resolve(ready)
  return new Promise((resolve) => waiting.push(resolve))
}

// ngrok's documented example (traffic-policy/actions/sse-find-replace, "Redacting sensitive data
// from streaming AI responses"), as written there, on a cloud endpoint that forwards to the upstream.
const DOCUMENTED = `on_event_stream_message:
  - actions:
      - type: sse-find-replace
        config:
          replacements:
            # Redact SSN patterns in streaming content
            - field: data
              from: "\\\\d{3}-\\\\d{2}-\\\\d{4}"
              to: "[SSN REDACTED]"
            # Redact email addresses
            - field: data
              from: "[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\\\\.[a-zA-Z]{2,}"
              to: "[EMAIL REDACTED]"
`

function endpointFile(url: string, phases: string): string {
  const indented = phases.replace(/^/gm, '  ')
  return `url: ${url}\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: forward-external, config: {url: "http://127.0.0.1:${upstream.port}"}}]\n${indented}`
}

/** curl -N reading the edge's answer as it streams; `until` waits for text to arrive. */
function streamingCurl(args: string[]) {
  const proc = Bun.spawn(['curl', '-s', '-S', '-N', '--max-time', '30', ...args], { stdout: 'pipe', stderr: 'pipe' })
  const reader = proc.stdout.getReader()
  const decoder = new TextDecoder()
  let received = ''
  return {
    proc,
    get received() {
      return received
    },
    /** Reads until `text` has arrived (within 5 s); returns everything received so far. */
    async until(text: string): Promise<string> {
      const deadline = Date.now() + 5000
      while (!received.includes(text)) {
        const left = deadline - Date.now()
        if (left <= 0) throw new Error(`no ${JSON.stringify(text)} within 5 s; received ${JSON.stringify(received)}`)
        const got = await Promise.race([reader.read(), Bun.sleep(left).then(() => undefined)])
        if (!got) continue
        if (got.done) throw new Error(`the stream ended before ${JSON.stringify(text)}; received ${JSON.stringify(received)}`)
        received += decoder.decode(got.value, { stream: true })
      }
      return received
    },
    /** Reads to the end of the answer; returns curl's exit code. */
    async end(): Promise<number> {
      for (;;) {
        const got = await reader.read()
        if (got.done) break
        received += decoder.decode(got.value, { stream: true })
      }
      return proc.exited
    },
  }
}

let edge: Edge
const http = (host: string, path: string) => ['-H', `host: ${host}`, `${edge.base}${path}`]
const https = (host: string, path: string) => ['--cacert', edge.caPath, '--resolve', `${host}:${edge.httpsPort}:127.0.0.1`, `https://${host}:${edge.httpsPort}${path}`]

beforeAll(async () => {
  edge = await startEdge({
    config: 'accounts:\n  - name: alice\n    authtokens: [alice-token]\n    domains: ["*.warren.localhost"]\n',
    policies: {
      'documented.yml': endpointFile('http://sse.warren.localhost', DOCUMENTED),
      'secure.yml': endpointFile('https://sse.warren.localhost', DOCUMENTED),
      'retry.yml': endpointFile(
        'http://retry.warren.localhost',
        // ngrok's "Modifying retry behavior" example.
        'on_event_stream_message:\n  - actions:\n      - type: sse-find-replace\n        config:\n          replacements:\n            - field: retry\n              from: "\\\\d+"\n              to: "5000"\n',
      ),
    },
  })
})
afterAll(async () => {
  await edge?.stop()
  upstream.stop(true)
})

describe('on_event_stream_message rewrites server-sent events as they stream', () => {
  test("ngrok's documented example loads", () => {
    // Policy load errors are logged with their code before the edge reports that it started.
    expect(edge.logs()).toContain('warren edge started')
    expect(edge.logs()).not.toMatch(/ERR_WARREN_20\d\d/)
  })

  for (const [name, target] of [
    ['http', () => http('sse.warren.localhost', '/stream')],
    ['https', () => https('sse.warren.localhost', '/stream')],
  ] as const) {
    test(`${name}: each message arrives rewritten while the upstream has not sent the next one`, async () => {
      const client = streamingCurl(target())
      const stream = await nextStream()
      stream.send('data: {"delta":"my ssn is 123-45-')
      stream.send('6789"}\n\n')
      expect(await client.until('\n\n')).toBe('data: {"delta":"my ssn is [SSN REDACTED]"}\n\n')
      // Only now does the upstream send the second message: the first was not held back for it.
      stream.send(': keep-alive\n\nevent: delta\ndata: write to ann.lee@example.com\nid: 7\n\n')
      expect(await client.until('id: 7\n\n')).toBe('data: {"delta":"my ssn is [SSN REDACTED]"}\n\n: keep-alive\n\nevent: delta\ndata: write to [EMAIL REDACTED]\nid: 7\n\n')
      stream.close()
      expect(await client.end()).toBe(0)
      expect(client.received).not.toContain('123-45-6789')
      expect(client.received).not.toContain('ann.lee@example.com')
    })
  }

  test('a finished stream with CRLF line ends, comments and multi-line data: only matches change', async () => {
    const res = await curl(http('sse.warren.localhost', '/fixed'))
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toBe('text/event-stream')
    expect(res.body).toBe(': warm-up\r\nretry: 300\r\n\r\nevent: note\r\ndata: call [SSN REDACTED]\r\ndata: or [EMAIL REDACTED]\r\nid: 2\r\n\r\n')
  })

  test("ngrok's retry example rewrites the retry field and leaves data alone", async () => {
    const res = await curl(http('retry.warren.localhost', '/fixed'))
    expect(res.body).toBe(': warm-up\r\nretry: 5000\r\n\r\nevent: note\r\ndata: call 555-12-3456\r\ndata: or bob@example.org\r\nid: 2\r\n\r\n')
  })

  test('an agent endpoint: the policy file of `warren http` rewrites messages coming back through the tunnel', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-sse-policy-'))
    writeFileSync(join(dir, 'policy.yml'), DOCUMENTED)
    const agent = startAgent(['http', String(upstream.port), '--url', 'http://agent-sse.warren.localhost', '--traffic-policy-file', join(dir, 'policy.yml'), ...edgeFlags(edge, 'alice-token')])
    try {
      await agent.forwarding()
      const client = streamingCurl(http('agent-sse.warren.localhost', '/stream'))
      const stream = await nextStream()
      stream.send('data: 321-54-9876\n\n')
      expect(await client.until('\n\n')).toBe('data: [SSN REDACTED]\n\n')
      stream.send('data: eve@example.net\n\n')
      expect(await client.until('[EMAIL REDACTED]\n\n')).toBe('data: [SSN REDACTED]\n\ndata: [EMAIL REDACTED]\n\n')
      stream.close()
      expect(await client.end()).toBe(0)
    } finally {
      await agent.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('answers that are not event streams pass unchanged', async () => {
    const res = await curl(http('sse.warren.localhost', '/text'))
    expect(res.body).toBe('data: 123-45-6789\n\n')
  })

  test('a message that grows past 1 MiB cuts the stream and logs ERR_WARREN_2120', async () => {
    const client = streamingCurl(http('sse.warren.localhost', '/stream'))
    const stream = await nextStream()
    stream.send('data: first 000-00-0000\n\n')
    expect(await client.until('\n\n')).toBe('data: first [SSN REDACTED]\n\n')
    const line = `data: ${'x'.repeat(64 * 1024)}\n`
    for (let i = 0; i < 17; i++) stream.send(line)
    // curl exits 18 (partial file): the chunked answer ended without its last chunk.
    expect(await client.end()).not.toBe(0)
    expect(client.received).toBe('data: first [SSN REDACTED]\n\n')
    expect(await edge.waitForLog(/event stream cut.*ERR_WARREN_2120/)).toContain('sse.warren.localhost')
    // Cutting the client's stream may already have cancelled the upstream's.
    try {
      stream.close()
    } catch {}
  })
})
