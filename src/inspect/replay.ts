import { fileServer } from '../agent/file-server.ts'
import { requestHttp2Once } from '../agent/http2-upstream.ts'
import type { UpstreamProtocol } from '../agent/spec.ts'
import type { Upstream } from '../agent/upstream.ts'
import { HOP_BY_HOP } from '../proxy/hop-headers.ts'
import type { CaptureStore, CapturedBody, Exchange } from './capture.ts'

/** What may change in a replay ("replay with edits"); anything left out is taken from the original. */
export interface ReplayEdits {
  method?: string
  uri?: string
  headers?: [string, string][]
  body?: Uint8Array
}

function captured(bytes: Uint8Array, max: number): CapturedBody {
  return { bytes: bytes.subarray(0, max), size: bytes.length, truncated: bytes.length > max }
}

/**
 * Sends a captured request again, straight to the endpoint's upstream (as ngrok's agent does: the
 * edge and its policy are not involved), and records the result as a new exchange with `replayOf`.
 * A truncated body cannot be replayed unchanged and is refused.
 */
export async function replay(store: CaptureStore, original: Exchange, upstream: Upstream, edits: ReplayEdits = {}, protocol: UpstreamProtocol = 'http1'): Promise<Exchange> {
  const method = (edits.method ?? original.request.method).toUpperCase()
  const uri = edits.uri ?? original.request.uri
  if (!uri.startsWith('/')) throw new RangeError(`the request target must start with "/", got ${JSON.stringify(uri)}`)
  if (!edits.body && original.request.body.truncated) throw new RangeError('the captured body was truncated, so the request cannot be replayed as it was; send a body with the replay')
  const body = edits.body ?? original.request.body.bytes
  const headers = new Headers()
  for (const [k, v] of edits.headers ?? original.request.headers) {
    const lower = k.toLowerCase()
    if (HOP_BY_HOP.includes(lower) || lower === 'content-length') continue
    headers.append(k, v)
  }
  const init: RequestInit & { unix?: string; tls?: { rejectUnauthorized: boolean }; decompress?: boolean } = {
    method,
    headers,
    redirect: 'manual',
    decompress: false,
    ...(method === 'GET' || method === 'HEAD' ? {} : { body }),
  }
  const started = Date.now()
  let response: Response
  let error: string | undefined
  try {
    if (upstream.kind === 'file') response = await fileServer(upstream.root, { dotfiles: upstream.dotfiles })(new Request(`http://${headers.get('host') ?? 'localhost'}${uri}`, init))
    else if (protocol === 'http2') response = await requestHttp2Once(upstream, { method, target: uri, headers: [...headers.entries()], body: init.body ? body : undefined })
    else if (upstream.kind === 'unix') response = await fetch(`http://${headers.get('host') ?? 'localhost'}${uri}`, { ...init, unix: upstream.path })
    else {
      const host = upstream.host.includes(':') ? `[${upstream.host}]` : upstream.host
      response = await fetch(`${upstream.tls ? 'https' : 'http'}://${host}:${upstream.port}${uri}`, { ...init, tls: { rejectUnauthorized: upstream.verify } })
    }
  } catch (err) {
    response = new Response(null, { status: 502 })
    error = `the upstream ${upstream.text} could not be reached: ${(err as Error).message}`
  }
  const responseBody = new Uint8Array(await response.arrayBuffer().catch(() => new ArrayBuffer(0)))
  const max = store.limits.maxBodyBytes
  const exchange = store.add({
    endpoint: original.endpoint,
    clientAddr: 'replay',
    start: started,
    durationMs: Date.now() - started,
    request: { method, uri, proto: protocol === 'http2' ? 'HTTP/2.0' : 'HTTP/1.1', headers: [...headers.entries()], body: captured(body, max) },
    response: error
      ? undefined
      : { status: response.status, statusText: response.statusText, proto: protocol === 'http2' ? 'HTTP/2.0' : 'HTTP/1.1', headers: [...response.headers.entries()], body: captured(responseBody, max) },
    error,
    replayOf: original.id,
  })
  return exchange
}
