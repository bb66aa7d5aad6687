/**
 * llhttp, the parser inside node:http, as a reference for differential tests: heads go to a `node`
 * child process in one batch and come back as accept/refuse plus the fields llhttp parsed.
 * Test support only; nothing on the data path imports it.
 */

export interface LlhttpResult {
  ok: boolean
  /** llhttp's error code when refused (`HPE_…`). */
  error?: string
  method?: string
  url?: string
  minor?: number
  /** Raw header lines, flattened name, value, name, value… as llhttp saw them. */
  headers?: string[]
  keepAlive?: boolean
  /** Decoded body bytes (latin1) and whether the message completed. */
  body?: string
  complete?: boolean
}

const SCRIPT = `
process.noDeprecation = true
const { HTTPParser } = process.binding('http_parser')
const { methods } = require('_http_common')
function run(b64) {
  const p = new HTTPParser()
  p.initialize(HTTPParser.REQUEST, {}, 0, 0)
  let out = {}
  const body = []
  p[HTTPParser.kOnHeaders] = () => {}
  p[HTTPParser.kOnHeadersComplete] = (major, minor, headers, method, url, s, m, upgrade, keepAlive) => {
    out = { method: methods[method], url, minor: major === 1 ? minor : major * 10 + minor, headers, keepAlive }
    return 0
  }
  p[HTTPParser.kOnBody] = (b) => { body.push(Buffer.from(b).toString('latin1')) }
  let complete = false
  p[HTTPParser.kOnMessageComplete] = () => { complete = true }
  const r = p.execute(Buffer.from(b64, 'base64'))
  if (r instanceof Error) return { ok: false, error: r.code }
  return { ok: true, ...out, body: body.join(''), complete }
}
let input = ''
process.stdin.on('data', (d) => (input += d)).on('end', () => process.stdout.write(JSON.stringify(JSON.parse(input).map(run))))
`

/** Runs every message through llhttp in one `node` process. */
export async function llhttp(messages: readonly Uint8Array[]): Promise<LlhttpResult[]> {
  const child = Bun.spawn(['node', '-e', SCRIPT], { stdin: 'pipe', stdout: 'pipe', stderr: 'inherit' })
  child.stdin.write(JSON.stringify(messages.map((m) => Buffer.from(m).toString('base64'))))
  await child.stdin.end()
  const text = await new Response(child.stdout).text()
  if ((await child.exited) !== 0) throw new Error('node (llhttp) failed')
  return JSON.parse(text) as LlhttpResult[]
}

/** True when `node` can be run (the differential tests say they skipped otherwise). */
export function hasNode(): boolean {
  return Bun.which('node') !== null
}
