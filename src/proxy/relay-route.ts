import type { Endpoint } from '../endpoints/endpoint.ts'
import type { EndpointTable, Pool } from '../endpoints/table.ts'
import { httpRequestEvent } from '../events/traffic.ts'
import type { RequestTally } from '../events/types.ts'
import type { RequestHead } from '../http1/head.ts'
import type { FastAnswer, Http1Connection } from '../http1/connection.ts'
import type { RelayTarget } from '../http1/relay.ts'
import { relayPlan, runPhase, type CompiledRule, type RunOptions } from '../policy/engine.ts'
import type { ConnInfo, Outcome } from '../policy/types.ts'
import { originOf, type H1Origin } from './h1/pool.ts'
import { HOP_BY_HOP } from './hop-headers.ts'
import { h1FailureResponse } from './http.ts'
import { misdirected } from './misdirected.ts'
import { splitHost, type ClientAddress, type PipelineOptions } from './pipeline.ts'
import { RelayExchange } from './relay-exchange.ts'
import { tunnelOrigin } from './tunnel-http.ts'

/**
 * The forward phase of the HTTP/1.1 engine's fast path (plaintext and HTTPS/1.1): for a request whose
 * endpoint's policy has a relay plan (policy/engine.ts: forward to this upstream or the agent,
 * possibly after on_http_request rules that only read the head and edit its header lines), it runs
 * those rules on an exchange made from the head (relay-exchange.ts), picks the origin and writes the
 * head the upstream gets, as the pipeline would have sent it (hop-by-hop fields and the client's
 * Connection options dropped, the policy's header edits, X-Forwarded-For/Proto/Host set); the engine
 * relays the bytes (src/http1/relay.ts), or writes the rules' answer. Any request it cannot serve so,
 * it declines, and the pipeline serves it.
 */

/** Fields the edge writes itself on the upstream request. */
const EDGE_FIELDS: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'content-length', 'expect', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'])
/** Methods whose request gets `Content-Length: 0` when it has no body (as the pipeline's client sends them). */
const BODY_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH'])

const origins = new WeakMap<URL, H1Origin>()

/**
 * The head the upstream gets, as the pipeline would send it: the client's lines (and the lines a policy
 * appended, or, once a policy removed or replaced some, the exchange's) without hop-by-hop fields and the client's Connection options,
 * then X-Forwarded-For/Proto/Host and the framing of the client's body. The path is the client's,
 * or the URL's path and query when a policy ran (relay-exchange.ts `target`, checked by the route).
 * Client lines nothing replaced go as the client's bytes, copied in runs from the read buffer; only
 * the request line, the lines a policy added or changed and the edge's own are written from strings.
 */
export function upstreamHead(head: RequestHead, ex: RelayExchange | undefined, forwarded: { clientIp: string; proto: string }): Buffer {
  const parsed = head.parsed
  // The lines a policy edited replace the client's; the client's Connection options were dropped from those already.
  // (Lines it only appended leave the client's as they are: `addedLines`.)
  const edited = ex?.headerLines
  const drop = edited ? [] : parsed.connectionTokens
  const offsets = parsed.lines
  const count = offsets.length / 4
  /** Byte ranges of the head to copy, as start/end pairs; adjacent lines make one range. */
  const runs: number[] = []
  let text = ''
  let forwardedFor = ''
  if (!edited) {
    // No policy changed the client's lines: names are compared as bytes, and no line becomes a string but X-Forwarded-For's value.
    const buf = parsed.buf
    for (let j = 0; j < count; j++) {
      const n0 = offsets[j * 4]!
      const n1 = offsets[j * 4 + 1]!
      // The client's Connection options go first: `Connection: x-forwarded-for` drops the client's line.
      if (drop.length && dropped(buf, n0, n1, drop)) continue
      const edge = edgeField(buf, n0, n1)
      if (edge === XFF) forwardedFor += `${Buffer.prototype.latin1Slice.call(buf, offsets[j * 4 + 2]!, offsets[j * 4 + 3]!)}, `
      if (edge !== undefined) continue
      addRun(runs, offsets[j * 4]!, j + 1 < count ? offsets[(j + 1) * 4]! : parsed.end - 2)
    }
    // Lines add-headers appended to the unchanged client lines come after them, as in the list they would make.
    const added = ex?.addedLines
    if (added)
      for (let k = 0; k < added.names.length; k++) {
        const name = added.names[k]!
        if (EDGE_FIELDS.has(name)) {
          if (name === 'x-forwarded-for') forwardedFor += `${added.values[k]}, `
          continue
        }
        text += `${name}: ${added.values[k]}\r\n`
      }
  } else {
    const { names, lower, values } = edited.fields()
    // Lines [0, origin.length) are still the client's as sent: line k is the head's line origin[k].
    const origin = edited.origins()
    for (let k = 0; k < names.length; k++) {
      const name = lower[k]!
      if (EDGE_FIELDS.has(name)) {
        if (name === 'x-forwarded-for') forwardedFor += `${values[k]}, `
        continue
      }
      if (k >= origin.length) text += `${names[k]}: ${values[k]}\r\n`
      else addRun(runs, offsets[origin[k]! * 4]!, origin[k]! + 1 < count ? offsets[(origin[k]! + 1) * 4]! : parsed.end - 2)
    }
  }
  text += `x-forwarded-for: ${forwardedFor}${forwarded.clientIp}\r\nx-forwarded-proto: ${forwarded.proto}\r\nx-forwarded-host: ${parsed.host}\r\n`
  if (parsed.chunked) text += 'transfer-encoding: chunked\r\n'
  else if (parsed.contentLength >= 0 || BODY_METHODS.has(parsed.method)) text += `content-length: ${Math.max(parsed.contentLength, 0)}\r\n`
  text += '\r\n'
  const line = `${parsed.method} ${ex?.target() ?? parsed.path} HTTP/1.1\r\n`
  let size = line.length + text.length
  for (let r = 0; r < runs.length; r += 2) size += runs[r + 1]! - runs[r]!
  const out = Buffer.allocUnsafe(size)
  let at = LATIN1_WRITE.call(out, line, 0)
  for (let r = 0; r < runs.length; r += 2) at += COPY.call(parsed.buf, out, at, runs[r]!, runs[r + 1]!)
  LATIN1_WRITE.call(out, text, at)
  return out
}

/** Adds a client line's bytes [start, end) to `runs` (start/end pairs), joining it to the run it follows. */
function addRun(runs: number[], start: number, end: number): void {
  if (runs.length && runs[runs.length - 1] === start) runs[runs.length - 1] = end
  else runs.push(start, end)
}

const XFF = Buffer.from('x-forwarded-for', 'latin1')
/** EDGE_FIELDS as lower-case bytes by length: a client's line is tested without making its name a string. */
const EDGE_BYTES = new Map<number, Uint8Array[]>()
for (const name of EDGE_FIELDS) EDGE_BYTES.set(name.length, [...(EDGE_BYTES.get(name.length) ?? []), name === 'x-forwarded-for' ? XFF : Buffer.from(name, 'latin1')])

/** The EDGE_FIELDS name (as bytes) the header name `buf[n0, n1)` is, case-insensitively, or undefined. */
function edgeField(buf: Uint8Array, n0: number, n1: number): Uint8Array | undefined {
  const candidates = EDGE_BYTES.get(n1 - n0)
  if (candidates === undefined) return undefined
  for (const name of candidates) {
    let k = 0
    // Names are tokens: `| 0x20` lower-cases letters and leaves `-` and digits, the only bytes EDGE_FIELDS holds.
    while (k < name.length && (buf[n0 + k]! | 0x20) === name[k]) k++
    if (k === name.length) return name
  }
  return undefined
}

/** True when the header name `buf[n0, n1)` is one of the client's Connection options (lower-case). */
function dropped(buf: Uint8Array, n0: number, n1: number, drop: readonly string[]): boolean {
  for (const token of drop) {
    if (token.length !== n1 - n0) continue
    let k = 0
    while (k < token.length) {
      const c = buf[n0 + k]!
      if ((c >= 65 && c <= 90 ? c + 32 : c) !== token.charCodeAt(k)) break
      k++
    }
    if (k === token.length) return true
  }
  return false
}

/** Buffer's latin1 writer without the encoding argument `write` parses on every call (half its cost for a head). */
const LATIN1_WRITE = (Buffer.prototype as unknown as { latin1Write: (this: Buffer, text: string, offset: number) => number }).latin1Write

/** Buffer's copy, for the parsed head's bytes (a Uint8Array the connection read into). */
const COPY = Buffer.prototype.copy as (this: Uint8Array, target: Uint8Array, targetStart: number, sourceStart: number, sourceEnd: number) => number

/**
 * What a relay plan's rules decided for this request, or undefined when the pipeline must serve it
 * after all: an action threw (the pipeline meets the same error and answers it), or the URL the rules
 * needed does not parse (the pipeline answers 400). Relayed actions never return a promise. `quiet`:
 * an answer from the edge will be the pipeline's, which runs the rules again and logs their failures.
 */
const QUIET: RunOptions = { quiet: true }
const LOUD: RunOptions = {}

function relayOutcome(rules: readonly CompiledRule[], ex: RelayExchange, quiet: boolean): Outcome | undefined {
  let outcome: Outcome | Promise<Outcome>
  try {
    outcome = runPhase(rules, ex, quiet ? QUIET : LOUD)
  } catch {
    return undefined
  }
  if (outcome instanceof Promise || ex.invalidUrl) return undefined
  return outcome
}

export interface RelayRouteOptions extends Pick<PipelineOptions, 'scheme' | 'store' | 'defaultPort' | 'serverIp' | 'serverPort' | 'upstreamTimeoutMs' | 'log' | 'logRequests' | 'events'> {
  /** The client a connection stands for when the socket's peer is the edge's own TLS front (https). */
  connectionClient?: (source: Http1Connection) => ClientAddress | null
  /** The listener's own paths (ACME HTTP-01) that must reach the pipeline. */
  reserved?: (path: string) => boolean
}

/**
 * The route of a connection's last request: the next one on the connection almost always names the
 * same Host, and while the table is the same its split and lookup would give the same answer (they
 * were 4-5 % of a /hello's samples, 2026-12-08).
 */
interface RouteMemo {
  host: string
  table: EndpointTable
  name: string
  port: number
  pool: Pool | undefined
}

/** Counts requests the fast path took (exposed as a metric so tests and operators can see it work). */
export class RelayStats {
  relayed = 0
}

export function createRelayRoute(options: RelayRouteOptions, stats: RelayStats) {
  const { store, log, events } = options
  const edgeAddr = `${options.serverIp}:${options.serverPort}`
  /** Filled per answered request and read at once by the counters (see EventSink.countRequest). */
  const tally: RequestTally = { endpoint: '', endpointId: '', method: '', path: '', status: 0, durationMs: 0, requestBytes: 0, responseBytes: 0 }
  return function relayRoute(head: RequestHead, source: Http1Connection): RelayTarget | FastAnswer | undefined {
    const parsed = head.parsed
    const { method, path } = parsed
    // Absolute-form and `*` targets, and bodies on methods that do not take one, are the pipeline's.
    if (path !== parsed.target || path.charCodeAt(0) !== 47) return undefined
    const hasBody = parsed.chunked || parsed.contentLength > 0
    if (hasBody && (method === 'GET' || method === 'HEAD')) return undefined
    if (options.reserved?.(path)) return undefined
    const table = store.current
    let memo = source.routeMemo as RouteMemo | undefined
    if (memo === undefined || memo.host !== parsed.host || memo.table !== table) {
      const { name, port } = splitHost(parsed.host, options.defaultPort)
      memo = { host: parsed.host, table, name, port, pool: table.lookup({ account: '', binding: 'public', scheme: options.scheme, host: name, port }) }
      source.routeMemo = memo
    }
    const { name, port, pool } = memo
    if (!pool || pool.members.length !== 1) return undefined
    const endpoint = pool.members[0]!
    const plan = relayPlan(endpoint.policy)
    if (!plan) return undefined
    const client: ClientAddress | null = options.connectionClient ? options.connectionClient(source) : source.requestIP()
    if (!client) return undefined
    // https: a Host other than the handshake's endpoint gets the pipeline's 421.
    if (options.scheme === 'https' && misdirected(table, pool, client.tls, options.defaultPort)) return undefined
    // on_tcp_connect runs once per connection (on https, at the TLS front): after it let this one through, it has nothing to say.
    if (endpoint.policy.on_tcp_connect.length && !source.connectedEndpoints.has(endpoint) && client.connected !== endpoint) return undefined
    const started = performance.now()
    let url = plan.url
    let ex: RelayExchange | undefined
    let answer: Response | undefined
    if (plan.rules) {
      const conn: ConnInfo = { clientIp: client.address, clientPort: client.port, serverIp: options.serverIp, serverPort: options.serverPort, startedAt: Date.now() }
      // Assigned, not spread: a spread copies through a generic path on every request.
      if (client.tls) conn.tls = client.tls
      ex = new RelayExchange(head, endpoint.info, conn, options.scheme)
      const outcome = relayOutcome(plan.rules, ex, hasBody)
      if (outcome?.kind === 'forward' && outcome.target.kind === 'external') url = outcome.target.url
      // An answer from the edge (deny, custom-response, a failed `${…}`): the engine writes it. After a
      // body the pipeline does, which reads the body as it must: it runs the rules again.
      else if (outcome?.kind === 'respond' && !hasBody) answer = outcome.response
      else if (outcome?.kind !== 'continue') return undefined
      if (!answer && ex.target() === undefined) return undefined
    }
    let origin: H1Origin | undefined
    let upstream: string | undefined
    if (url) {
      origin = origins.get(url)
      if (!origin) origins.set(url, (origin = originOf(url)))
      upstream = url.origin
    } else if (endpoint.tunnel && !answer) origin = tunnelOrigin(endpoint.tunnel, edgeAddr)
    else if (!answer) return undefined

    stats.relayed++
    const report = {
      answered(status, headers) {
        if (options.logRequests) logRequest(endpoint, method, path, status, started, client.address)
        if (!events) return
        // Without a reader of the event, the counters get its figures and no event is built.
        tally.endpoint = endpoint.urlText
        tally.endpointId = endpoint.id
        tally.method = method
        tally.path = path
        tally.status = status
        tally.durationMs = performance.now() - started
        tally.requestBytes = hasBody ? parsed.contentLength : 0
        const length = headers.get('content-length')
        tally.responseBytes = length === null ? -1 : Number(length)
        if (events.countRequest?.(tally)) return
        const query = path.indexOf('?')
        events.emit(
          httpRequestEvent({
            req: { method, headers: { get: (field) => head.getAll(field)[0] ?? null }, body: hasBody ? true : null },
            url: { protocol: `${options.scheme}:`, pathname: query === -1 ? path : path.slice(0, query), search: query === -1 ? '' : path.slice(query), href: `${options.scheme}://${parsed.host}${path}` },
            host: name,
            port,
            conn: { clientIp: client.address, clientPort: client.port, serverIp: options.serverIp, serverPort: options.serverPort },
            endpoint,
            started,
            response: { status, headers },
            closed: false,
          }),
        )
      },
      failure: (err) => h1FailureResponse(err, head.getAll('accept')[0] ?? null, upstream),
    } satisfies Pick<RelayTarget, 'answered' | 'failure'>
    if (answer) {
      report.answered(answer.status, answer.headers)
      return { response: answer }
    }
    // Fields named, not spread from `report`: a spread copies through a generic path on every request.
    return {
      origin: origin!,
      head: upstreamHead(head, ex, { clientIp: client.address, proto: options.scheme }),
      timeoutMs: options.upstreamTimeoutMs,
      agent: upstream === undefined,
      answered: report.answered,
      failure: report.failure,
    }
  }

  function logRequest(endpoint: Endpoint, method: string, path: string, status: number, started: number, clientIp: string): void {
    const query = path.indexOf('?')
    log.info('request', {
      endpoint: endpoint.urlText,
      method,
      path: query === -1 ? path : path.slice(0, query),
      status,
      duration_ms: Math.round((performance.now() - started) * 100) / 100,
      client_ip: clientIp,
    })
  }
}
