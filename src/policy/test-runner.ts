import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import * as v from 'valibot'
import { describeIssue, issuePath, parseSource, type FileIssue, type SourceDocument } from '../config/document.ts'
import type { TrafficPolicy } from '../config/schema/v1/policy.ts'
import { formatEndpointUrl, parseEndpointUrl, type Binding, type EndpointUrl } from '../config/url.ts'
import type { Endpoint } from '../endpoints/endpoint.ts'
import { CODES, WarrenError } from '../lib/errors.ts'
import { errorResponse } from '../proxy/errors.ts'
import { eventStreamResponse } from '../proxy/event-stream.ts'
import { setForwardedHeaders } from '../proxy/forwarded.ts'
import { dropConnectionListed, stripHopHeaders } from '../proxy/hop-headers.ts'
import { compilePolicy, EMPTY_POLICY, runPhase, validatePolicy, type CompiledPolicy, type TraceEvent } from './engine.ts'
import { ConfigIssues } from './issue.ts'
import type { EndpointInfo, HttpExchange, HttpResponseParts, Phase, Routing } from './types.ts'

/*
 * `warren policy test`: YAML fixtures that run requests through a traffic policy without listeners
 * or upstreams. The data path is simulated as src/proxy/pipeline.ts runs it (on_tcp_connect,
 * on_http_request, forward with X-Forwarded-* and hop-by-hop headers removed, on_http_response;
 * the headers the client's Connection names are dropped before any phase);
 * what a forward would have sent upstream is recorded instead of sent.
 */

const Text = v.pipe(v.union([v.string(), v.number(), v.boolean()]), v.transform(String))
const HeaderValues = v.record(v.string(), v.union([Text, v.array(Text)]))
/** Expected headers: a value to compare with, or null for "must be absent". */
const ExpectedHeaders = v.record(v.string(), v.nullable(Text))
const Status = v.pipe(v.number(), v.integer(), v.minValue(100), v.maxValue(999))

/** A request of a test case. */
export const RequestSpec = v.strictObject({
  /** HTTP method. */
  method: v.optional(v.string(), 'GET'),
  /** A path (`/api?x=1`, on the endpoint's URL) or an absolute URL. */
  url: v.optional(v.string(), '/'),
  /** Request headers; `host` defaults to the URL's. */
  headers: v.optional(HeaderValues, {}),
  /** The client's address (`conn.client_ip`). */
  client_ip: v.optional(v.string(), '127.0.0.1'),
  /** Request body text. */
  body: v.optional(v.string()),
})

/** What the upstream answers when the request is forwarded (default 200, no body). */
export const UpstreamSpec = v.strictObject({
  status: v.optional(Status, 200),
  headers: v.optional(HeaderValues, {}),
  body: v.optional(v.string(), ''),
})

const ExpectSpec = v.strictObject({
  /** Status code the client gets. */
  status: v.optional(Status),
  /** True when the edge drops the connection without an answer (close-connection, deny in on_tcp_connect). */
  closed: v.optional(v.boolean()),
  /** Response headers the client gets (null: must be absent). */
  headers: v.optional(ExpectedHeaders),
  /** Text the response body must contain. */
  body_contains: v.optional(v.union([v.string(), v.array(v.string())])),
  /** What the upstream would see, or `false` for "not forwarded". */
  forwarded: v.optional(
    v.union([
      v.literal(false),
      v.strictObject({
        /** Full URL the upstream is asked for (origin + path + query). */
        url: v.optional(v.string()),
        /** Request headers the upstream gets (null: must be absent). */
        headers: v.optional(ExpectedHeaders),
        /** Request body the upstream gets. */
        body: v.optional(v.string()),
      }),
    ]),
  ),
  /** Where the request goes: an upstream origin (forward-external) or an internal endpoint URL. */
  forwarded_to: v.optional(v.string()),
})

const CaseSpec = v.strictObject({
  name: v.optional(v.string()),
  request: v.optional(RequestSpec, {}),
  upstream_response: v.optional(UpstreamSpec, {}),
  expect: ExpectSpec,
})

/** The endpoint a policy is tested on. */
export const EndpointSpec = v.strictObject({
  /** Endpoint URL, e.g. `https://api.example.com`. */
  url: v.string(),
  binding: v.optional(v.picklist(['public', 'internal'])),
  /**
   * Set for an agent endpoint: the upstream a request that no action ended goes to. Without it the
   * endpoint is a cloud endpoint (its policy must end every request, ngrok 6029).
   */
  upstream: v.optional(v.string()),
})

/** A `*.policytest.yaml` file. */
export const FixtureSpec = v.strictObject({
  /** The traffic policy under test (a map, or YAML/JSON text). */
  policy: v.optional(v.union([v.string(), v.record(v.string(), v.unknown())])),
  /** Or a traffic policy file, relative to this file. */
  policy_file: v.optional(v.string()),
  endpoint: v.optional(EndpointSpec, { url: 'https://example.com' }),
  cases: v.array(CaseSpec),
})

export type RequestInput = v.InferOutput<typeof RequestSpec>
export type UpstreamInput = v.InferOutput<typeof UpstreamSpec>
export type EndpointInput = v.InferOutput<typeof EndpointSpec>
type CaseInput = v.InferOutput<typeof CaseSpec>

/** A compiled policy with the endpoint it runs on. */
export interface PolicyUnderTest {
  spec: TrafficPolicy
  policy: CompiledPolicy
  endpoint: EndpointInfo
  /** For agent endpoints: where an unfinished request goes. */
  upstream?: URL
}

const DEFAULT_PORTS: Readonly<Record<string, number>> = { http: 80, https: 443, tls: 443, tcp: 0 }

/** Locates issues of a traffic policy in the file it came from (a fixture key, or its own file). */
type Locate = (path: readonly (string | number)[]) => { file: string; line: number; col: number }

/** Compiles `raw` for the endpoint; issues come back with file positions. */
export function preparePolicy(raw: unknown, endpoint: EndpointInput, locate: Locate): PolicyUnderTest | { issues: FileIssue[] } {
  let url: EndpointUrl
  try {
    url = parseEndpointUrl(endpoint.url, endpoint.binding ? { binding: endpoint.binding as Binding } : {})
  } catch (err) {
    return { issues: [{ ...locate(['endpoint', 'url']), code: CODES.ENDPOINT_URL_INVALID, message: err instanceof Error ? err.message : String(err) }] }
  }
  let upstream: URL | undefined
  if (endpoint.upstream !== undefined) {
    if (!URL.canParse(endpoint.upstream)) return { issues: [{ ...locate(['endpoint', 'upstream']), code: CODES.POLICY_FILE_SCHEMA, message: `upstream "${endpoint.upstream}" is not a URL` }] }
    upstream = new URL(endpoint.upstream)
  }
  const port = url.port ?? DEFAULT_PORTS[url.scheme]!
  const info: EndpointInfo = { id: 'ep_policytest', url: formatEndpointUrl(url), scheme: url.scheme, host: url.host.replace(/^\*\./, 'any.'), port, binding: url.binding }
  try {
    const spec = validatePolicy(raw)
    const policy = compilePolicy(spec, { scheme: url.scheme, cloud: upstream === undefined })
    return { spec, policy, endpoint: info, ...(upstream ? { upstream } : {}) }
  } catch (err) {
    if (!(err instanceof ConfigIssues)) throw err
    return { issues: err.issues.map((i) => ({ ...locate(i.path), code: i.code, message: i.message })) }
  }
}

/** Reads the policy a fixture names (inline `policy` or `policy_file`). */
export function fixturePolicy(
  file: string,
  doc: SourceDocument,
  fixture: { policy?: string | Record<string, unknown> | undefined; policy_file?: string | undefined; endpoint: EndpointInput },
): PolicyUnderTest | { issues: FileIssue[] } {
  const at = (path: readonly (string | number)[]) => ({ file, ...doc.locate(path) })
  if ((fixture.policy === undefined) === (fixture.policy_file === undefined))
    return { issues: [{ ...at(['policy']), code: CODES.POLICY_FILE_SCHEMA, message: 'set exactly one of policy and policy_file' }] }
  if (fixture.policy_file !== undefined) {
    const path = resolve(dirname(file), fixture.policy_file)
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (err) {
      return { issues: [{ ...at(['policy_file']), code: CODES.POLICY_FILE_MISSING, message: `cannot read policy_file "${fixture.policy_file}": ${(err as Error).message}` }] }
    }
    return policyFromText(path, text, fixture.endpoint, (p) => (p[0] === 'endpoint' ? at(p) : undefined))
  }
  if (typeof fixture.policy === 'string') {
    const sub = parseSource(fixture.policy)
    if ('errors' in sub) return { issues: sub.errors.map((e) => ({ ...at(['policy']), code: e.code ?? CODES.POLICY_FILE_SYNTAX, message: `policy: ${e.message}` })) }
    return preparePolicy(sub.doc.value, fixture.endpoint, (p) => at(p[0] === 'endpoint' ? p : ['policy']))
  }
  return preparePolicy(fixture.policy, fixture.endpoint, (p) => at(p[0] === 'endpoint' ? p : ['policy', ...p]))
}

/** A traffic policy file (top-level `on_http_request`…) tested on `endpoint`. */
export function policyFromText(
  file: string,
  text: string,
  endpoint: EndpointInput,
  elsewhere: (path: readonly (string | number)[]) => { file: string; line: number; col: number } | undefined = () => undefined,
): PolicyUnderTest | { issues: FileIssue[] } {
  const parsed = parseSource(text)
  if ('errors' in parsed) return { issues: parsed.errors.map((e) => ({ file, ...e, code: e.code ?? CODES.POLICY_FILE_SYNTAX })) }
  const doc = parsed.doc
  return preparePolicy(doc.value, endpoint, (p) => elsewhere(p) ?? { file, ...doc.locate(p) })
}

/** The exchange for a test request, as the data path builds it (Host from the URL unless given). */
export function exchangeFor(request: RequestInput, endpoint: EndpointInfo): HttpExchange {
  const base = `${endpoint.scheme === 'https' || endpoint.scheme === 'tls' ? 'https' : 'http'}://${endpoint.host}${endpoint.port === DEFAULT_PORTS[endpoint.scheme] ? '' : `:${endpoint.port}`}`
  const url = new URL(request.url, base)
  url.protocol = `${endpoint.scheme === 'tls' ? 'https' : endpoint.scheme}:`
  const headers = new Headers()
  for (const [name, value] of Object.entries(request.headers)) for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one)
  if (!headers.has('host')) headers.set('host', url.host)
  if (request.body !== undefined && !headers.has('content-length')) headers.set('content-length', String(Buffer.byteLength(request.body)))
  dropConnectionListed(headers)
  return {
    endpoint,
    conn: { clientIp: request.client_ip, clientPort: 50000, serverIp: '127.0.0.1', serverPort: endpoint.port, startedAt: Date.now() },
    method: request.method.toUpperCase(),
    url,
    headers,
    vars: {},
    actions: {},
    logMetadata: {},
    body: request.body === undefined ? null : new Response(request.body).body,
  }
}

/** An internal endpoint as far as the test knows: any `*.internal` URL resolves, with no policy of its own. */
function internalEndpoint(url: URL): Endpoint {
  const parsed = parseEndpointUrl(url.href.replace(/\/$/, ''))
  const port = parsed.port ?? DEFAULT_PORTS[parsed.scheme]!
  const urlText = formatEndpointUrl(parsed)
  return {
    id: `internal:${urlText}`,
    kind: 'cloud',
    url: parsed,
    urlText,
    port,
    account: 'default',
    poolingEnabled: false,
    source: 'policytest',
    position: { line: 1, col: 1 },
    description: undefined,
    metadata: undefined,
    policy: EMPTY_POLICY,
    info: { id: `internal:${urlText}`, url: urlText, scheme: parsed.scheme, host: parsed.host, port, binding: 'internal' },
  }
}

const ROUTING: Routing = {
  chain: [],
  resolveInternal: (url) => ({ endpoint: internalEndpoint(url) }),
  fetchInternal: () => Promise.reject(new Error('side requests to internal endpoints are not run by `warren policy test`')),
}

/** What one simulated request did. */
export interface Simulation {
  /** What the client gets; undefined when the connection was dropped. */
  response: Response | undefined
  /** Set when the request was forwarded: the target, and the request as the upstream would get it. */
  forwarded?: { to: string; url: string; headers: Headers; body: ReadableStream<Uint8Array> | null | undefined }
}

export interface SimulateOptions {
  upstream?: UpstreamInput
  trace?: (phase: Phase, event: TraceEvent) => void
}

function upstreamResponse(spec: UpstreamInput | undefined): Response {
  const headers = new Headers()
  for (const [name, value] of Object.entries(spec?.headers ?? {})) for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one)
  const status = spec?.status ?? 200
  return new Response([101, 204, 205, 304].includes(status) ? null : (spec?.body ?? ''), { status, headers })
}

/** Runs `ex` through the policy's phases as the data path does; nothing leaves the process. */
export async function simulate(test: PolicyUnderTest, ex: HttpExchange, options: SimulateOptions = {}): Promise<Simulation> {
  const run = (phase: Phase) => runPhase(test.policy[phase], ex, options.trace ? { trace: (e) => options.trace!(phase, e) } : {})
  const accept = ex.headers.get('accept')
  const hostHeader = ex.headers.get('host') ?? ex.url.host
  const out: Simulation = { response: undefined }
  ex.routing = ROUTING

  if (test.policy.on_tcp_connect.length) {
    const connect = await run('on_tcp_connect')
    if (connect.kind === 'close') return out
    if (connect.kind === 'respond') return { response: connect.response }
  }

  let response: Response
  const outcome = await run('on_http_request')
  if (outcome.kind === 'close') return out
  if (outcome.kind === 'respond') response = outcome.response
  else {
    let target: URL | undefined
    if (outcome.kind === 'forward') target = outcome.target.url
    else if (test.upstream) target = test.upstream
    if (!target) {
      response = errorResponse(503, CODES.POLICY_NOT_TERMINATED, "The endpoint's traffic policy did not handle this request.", accept)
    } else {
      const internal = outcome.kind === 'forward' && outcome.target.kind === 'internal'
      if (!internal) {
        setForwardedHeaders(ex, hostHeader)
        stripHopHeaders(ex.headers)
      }
      const to = target.href.replace(/\/$/, '')
      out.forwarded = { to, url: target.origin + ex.url.pathname + ex.url.search, headers: new Headers(ex.headers), body: ex.body }
      response = upstreamResponse(options.upstream)
    }
  }

  if (test.policy.on_http_response.length) {
    ex.vars = {}
    const parts: HttpResponseParts = { status: response.status, headers: new Headers(response.headers), body: response.body }
    ex.response = parts
    const after = await run('on_http_response')
    if (after.kind === 'close') return { ...out, response: undefined }
    if (after.kind === 'respond') response = after.response
    else response = new Response([101, 204, 205, 304].includes(parts.status) ? null : (parts.body ?? null), { status: parts.status, headers: parts.headers })
  }
  const messages = test.policy.on_event_stream_message
  if (messages.length) {
    const trace = options.trace
    response = eventStreamResponse(response, ex, {
      rules: messages,
      vars: test.policy.on_http_response.length ? ex.vars : {},
      ...(trace ? { trace: (e: TraceEvent) => trace('on_event_stream_message', e) } : {}),
    })
  }
  return { ...out, response }
}

/** The result of one case: its failures (empty when it passed). */
export interface CaseResult {
  name: string
  line: number
  failures: string[]
}

export interface FixtureResult {
  file: string
  /** Problems that kept the fixture from running (bad YAML, schema, policy). */
  issues: FileIssue[]
  cases: CaseResult[]
}

function compareHeaders(what: string, want: Record<string, string | null>, got: Headers, failures: string[]): void {
  for (const [name, value] of Object.entries(want)) {
    const actual = got.get(name)
    if (value === null) {
      if (actual !== null) failures.push(`${what} header ${name}: expected it to be absent, got ${JSON.stringify(actual)}`)
    } else if (actual !== value) failures.push(`${what} header ${name}: expected ${JSON.stringify(value)}, got ${actual === null ? 'nothing' : JSON.stringify(actual)}`)
  }
}

function sameTarget(a: string, b: string): boolean {
  const norm = (s: string) => (URL.canParse(s) ? new URL(s).href.replace(/\/$/, '') : s)
  return norm(a) === norm(b)
}

async function check(c: CaseInput, sim: Simulation): Promise<string[]> {
  const failures: string[] = []
  const e = c.expect
  const res = sim.response
  if (e.closed !== undefined && e.closed !== (res === undefined))
    failures.push(e.closed ? `expected the connection to be closed, got status ${res!.status}` : 'expected an answer, the connection was closed')
  if (e.status !== undefined && res?.status !== e.status)
    failures.push(`status: expected ${e.status}, got ${res ? res.status : 'a closed connection'}${res?.headers.get('warren-error-code') ? ` (${res.headers.get('warren-error-code')})` : ''}`)
  if (e.headers && res) compareHeaders('response', e.headers, res.headers, failures)
  if (e.body_contains !== undefined) {
    const body = res ? await res.text() : ''
    for (const part of Array.isArray(e.body_contains) ? e.body_contains : [e.body_contains])
      if (!body.includes(part)) failures.push(`body: expected it to contain ${JSON.stringify(part)}, got ${JSON.stringify(body.length > 200 ? `${body.slice(0, 200)}…` : body)}`)
  }
  if (e.forwarded === false && sim.forwarded) failures.push(`expected no forward, the request went to ${sim.forwarded.to}`)
  if (e.forwarded_to !== undefined) {
    if (!sim.forwarded) failures.push(`forwarded_to: expected ${e.forwarded_to}, the request was not forwarded`)
    else if (!sameTarget(e.forwarded_to, sim.forwarded.to)) failures.push(`forwarded_to: expected ${e.forwarded_to}, got ${sim.forwarded.to}`)
  }
  if (e.forwarded) {
    const f = sim.forwarded
    if (!f) failures.push('forwarded: expected the request to be forwarded, it was not')
    else {
      if (e.forwarded.url !== undefined && f.url !== e.forwarded.url) failures.push(`forwarded url: expected ${e.forwarded.url}, got ${f.url}`)
      if (e.forwarded.headers) compareHeaders('forwarded', e.forwarded.headers, f.headers, failures)
      if (e.forwarded.body !== undefined) {
        const body = f.body ? await new Response(f.body).text() : ''
        if (body !== e.forwarded.body) failures.push(`forwarded body: expected ${JSON.stringify(e.forwarded.body)}, got ${JSON.stringify(body)}`)
      }
    }
  }
  return failures
}

function caseName(c: CaseInput, i: number): string {
  return c.name ?? `case ${i + 1}: ${c.request.method} ${c.request.url}`
}

/** Runs one fixture file's cases. Never throws for problems in the file: they come back as issues. */
export async function runFixtureFile(file: string): Promise<FixtureResult> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    return { file, cases: [], issues: [{ file, line: 1, col: 1, code: CODES.POLICY_FILE_MISSING, message: `cannot read: ${(err as Error).message}` }] }
  }
  return runFixtureText(file, text)
}

/** Runs fixture `text` (named `file` in messages; `policy_file` is relative to it). */
export async function runFixtureText(file: string, text: string): Promise<FixtureResult> {
  const parsed = parseSource(text)
  if ('errors' in parsed) return { file, cases: [], issues: parsed.errors.map((e) => ({ file, ...e, code: e.code ?? CODES.POLICY_FILE_SYNTAX })) }
  const doc = parsed.doc
  const valid = v.safeParse(FixtureSpec, doc.value ?? {})
  if (!valid.success)
    return { file, cases: [], issues: valid.issues.map((i) => ({ file, ...doc.locate(issuePath(i)), code: CODES.POLICY_FILE_SCHEMA, message: describeIssue(i) })) }
  const fixture = valid.output
  const test = fixturePolicy(file, doc, fixture)
  if ('issues' in test) return { file, cases: [], issues: test.issues }
  const cases: CaseResult[] = []
  for (const [i, c] of fixture.cases.entries()) {
    const line = doc.locate(['cases', i]).line
    let failures: string[]
    try {
      const sim = await simulate(test, exchangeFor(c.request, test.endpoint), { upstream: c.upstream_response })
      failures = await check(c, sim)
    } catch (err) {
      failures = [`the request failed: ${err instanceof WarrenError ? `${err.message} [${err.code}]` : err instanceof Error ? err.message : String(err)}`]
    }
    cases.push({ name: caseName(c, i), line, failures })
  }
  return { file, issues: [], cases }
}
