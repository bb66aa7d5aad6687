import { parseCookieHeader, parseSetCookies } from './cookies.ts'
import { rfc3339, TEXT_FIELD } from './expr/values.ts'
import type { HttpExchange, UrlParts } from './types.ts'
import { parseUserAgent, type UserAgent } from './user-agent.ts'
import { memoize } from '../lib/memo.ts'

/*
 * The CEL variables of one exchange, in ngrok's names and shapes. expr/variables.ts declares their
 * types; the values are instances of the classes below, registered with cel-js as those types, so
 * no conversion runs per evaluation. Everything is lazy: a field is computed from the exchange the
 * first time an expression reads it (cookies and the User-Agent are parsed only for policies that
 * look at them) and kept for the rest of that context.
 */

type Compute<S> = (source: S) => unknown

/** A typed variable value: its fields are memoizing getters over `source`. */
export interface VariableValue {
  toJSON(): Record<string, unknown>
}

export type VariableClass<S = never> = new (source: S) => VariableValue

/** Marks a field not computed yet (a computed field may be undefined). */
const UNSET: unique symbol = Symbol('unset')

/** Each variable class's slot names: field `keys[i]` is kept in the own property `slots[i]` of its instances. */
const FIELD_SLOTS = new WeakMap<object, ReadonlyMap<string, string>>()

/**
 * Builds the class of one variable type from its fields' compute functions. The constructor and
 * each field's getter are generated (from fixed templates and slot numbers only, no field name or
 * other text): every getter then has its own code and inline caches, and an instance is one object
 * with a slot per field, set UNSET in the constructor (a shared getter reading a per-instance array
 * was polymorphic over every class and allocated the array on each `new`).
 */
function variableClass<S>(name: string, fields: Record<string, Compute<S>>): VariableClass<S> {
  const keys = Object.keys(fields)
  const slots = keys.map((_, i) => `_${i}`)
  const init = slots.map((slot) => `this.${slot} = U`).join('; ')
  const Class = new Function('U', `'use strict'\nreturn class { constructor(source) { this.source = source; ${init} } }`)(UNSET) as new (source: S) => Record<string, unknown>
  Object.defineProperty(Class, 'name', { value: name })
  Object.defineProperty(Class.prototype, 'toJSON', {
    value: function toJSON(this: Record<string, unknown>): Record<string, unknown> {
      const out: Record<string, unknown> = {}
      for (const key of keys) if (key !== TEXT_FIELD) out[key] = this[key]
      return out
    },
  })
  FIELD_SLOTS.set(Class, new Map(keys.map((key, i) => [key, slots[i]!])))
  keys.forEach((key, i) => {
    const slot = slots[i]!
    const get = new Function('U', 'compute', `'use strict'\nreturn function get() { const v = this.${slot}; return v !== U ? v : (this.${slot} = compute(this.source)) }`)(UNSET, fields[key])
    Object.defineProperty(Class.prototype, key, { get })
  })
  return Class as unknown as VariableClass<S>
}

/** The same few User-Agents come back request after request (parsing one is ~1 µs of regexes). */
const userAgentOf = memoize(parseUserAgent, 1000)

const USER_AGENT_FIELDS: readonly (keyof UserAgent)[] = [
  'name',
  'version',
  'os',
  'os_version',
  'device',
  'url',
  'is_mobile',
  'is_tablet',
  'is_desktop',
  'is_bot',
]

/**
 * Header name → its lines, as `req.headers`/`res.headers` show them. HTTP names are case-insensitive
 * and ngrok's examples write them as sent (`req.headers['X-Api-Version']`, `'Authorization' in
 * req.headers`), so lookups lower-case the key; keys listed stay lower-case. Both evaluators read a
 * Map through `get`/`has` (fast.ts and cel-js), so they agree.
 */
export class HeaderMap extends Map<string, string[]> {
  override get(name: string): string[] | undefined {
    return super.get(typeof name === 'string' ? name.toLowerCase() : name)
  }

  override has(name: string): boolean {
    return super.has(typeof name === 'string' ? name.toLowerCase() : name)
  }
}
// cel-js takes a value for a map only when `value.constructor === Map`; its reads go through get/has.
Object.defineProperty(HeaderMap.prototype, 'constructor', { value: Map })

function headerLists(headers: Headers): HeaderMap {
  const out = new HeaderMap()
  headers.forEach((value, name) => {
    // set-cookie may repeat; every other header already arrives joined by Headers.
    const lines = out.get(name)
    if (lines) lines.push(value)
    else out.set(name, [value])
  })
  return out
}

/** The query parameters of a request without a query: one frozen map for all (CEL values are never changed). */
const NO_PARAMS: Record<string, string[]> = Object.freeze({})

function queryParams(url: UrlParts): Record<string, string[]> {
  // Most requests have no query: reading `search` is cheap, parsing it is not. The same parse as `url.searchParams`.
  if (url.search === '') return NO_PARAMS
  const out: Record<string, string[]> = {}
  new URLSearchParams(url.search).forEach((value, name) => (out[name] ??= []).push(value))
  return out
}

function listHeader(headers: Headers, name: string): string[] {
  const value = headers.get(name)
  return value === null ? [] : value.split(',').map((v) => v.trim()).filter((v) => v !== '')
}

function contentLength(headers: Headers): bigint {
  const length = headers.get('content-length')
  return length === null || !/^\d+$/.test(length.trim()) ? -1n : BigInt(length.trim())
}

function userPassword(url: UrlParts): string {
  return url.username === '' ? '' : url.password === '' ? url.username : `${url.username}:${url.password}`
}

/** `text/html; charset=UTF-8`: compares as the media type `text/html` (lower-case). */
const ContentType = variableClass<string>('warren.ContentType', {
  [TEXT_FIELD]: (raw) => raw.split(';')[0]!.trim().toLowerCase(),
  raw: (raw) => raw,
  parameters: (raw) => {
    const out: Record<string, string> = {}
    for (const p of raw.split(';').slice(1)) {
      const eq = p.indexOf('=')
      if (eq === -1) continue
      out[p.slice(0, eq).trim().toLowerCase()] = p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1')
    }
    return out
  },
})

/** The User-Agent: compares as the header text; parsed only when a field such as `.is_bot` is read. */
const UserAgentValue = variableClass<string>('warren.UserAgent', {
  [TEXT_FIELD]: (raw) => raw,
  // Each field computed once per value; the parse itself is kept by userAgentOf for the same text.
  ...Object.fromEntries(USER_AGENT_FIELDS.map((key) => [key, (raw: string) => userAgentOf(raw)[key]])),
})

/** The URL the `req.url.*` fields read: the exchange's parts when it has them unparsed, else its URL. */
function urlOf(ex: HttpExchange): UrlParts {
  return ex.urlParts ?? ex.url
}

const RequestUrl = variableClass<HttpExchange>('warren.RequestUrl', {
  [TEXT_FIELD]: (ex) => urlOf(ex).href,
  authority: (ex) => (userPassword(urlOf(ex)) === '' ? urlOf(ex).host : `${userPassword(urlOf(ex))}@${urlOf(ex).host}`),
  host: (ex) => urlOf(ex).hostname,
  path: (ex) => urlOf(ex).pathname,
  port: (ex) => (urlOf(ex).port === '' ? BigInt(ex.endpoint.port) : BigInt(urlOf(ex).port)),
  query: (ex) => urlOf(ex).search.slice(1),
  query_params: (ex) => queryParams(urlOf(ex)),
  raw: (ex) => urlOf(ex).href,
  raw_path: (ex) => urlOf(ex).pathname,
  scheme: (ex) => urlOf(ex).protocol.slice(0, -1),
  uri: (ex) => urlOf(ex).pathname + urlOf(ex).search,
  user_password: (ex) => userPassword(urlOf(ex)),
})

const RequestTs = variableClass<HttpExchange>('warren.RequestTs', {
  header_received: (ex) => new Date(ex.conn.startedAt),
})

const RequestVars = variableClass<HttpExchange>('warren.Request', {
  method: (ex) => ex.method,
  host: (ex) => ex.headers.get('host') ?? ex.url.host,
  version: (ex) => ex.httpVersion ?? 'HTTP/1.1',
  location: (ex) => ex.headers.get('location') ?? '',
  url: (ex) => new RequestUrl(ex),
  headers: (ex) => headerLists(ex.headers),
  trailers: () => ({}),
  cookies: (ex) => parseCookieHeader(ex.headers.has('cookie') ? [ex.headers.get('cookie')!] : []),
  content_length: (ex) => contentLength(ex.headers),
  content_encoding: (ex) => listHeader(ex.headers, 'content-encoding'),
  content_type: (ex) => new ContentType(ex.headers.get('content-type') ?? ''),
  user_agent: (ex) => new UserAgentValue(ex.headers.get('user-agent') ?? ''),
  ts: (ex) => new RequestTs(ex),
})

type ResponseParts = NonNullable<HttpExchange['response']>

/** The `req` fields computed from header lines: what add-headers and remove-headers can change. */
const REQUEST_HEADER_SLOTS: readonly string[] = ['host', 'location', 'headers', 'cookies', 'content_length', 'content_encoding', 'content_type', 'user_agent'].map(
  (key) => FIELD_SLOTS.get(RequestVars)!.get(key)!,
)

/** Marks the REQUEST_HEADER_SLOTS of a `req` value not computed: generated with plain stores (slot names are `_N`). */
const forgetRequestHeaders = new Function('U', `'use strict'\nreturn function forgetRequestHeaders(req) { ${REQUEST_HEADER_SLOTS.map((slot) => `req.${slot} = U`).join('; ')} }`)(
  UNSET,
) as (req: VariableValue) => void

const ResponseVars = variableClass<ResponseParts>('warren.Response', {
  status_code: (res) => BigInt(res.status),
  headers: (res) => headerLists(res.headers),
  trailers: () => ({}),
  cookies: (res) => parseSetCookies(res.headers.getSetCookie()),
  content_length: (res) => contentLength(res.headers),
  content_encoding: (res) => listHeader(res.headers, 'content-encoding'),
  content_type: (res) => new ContentType(res.headers.get('content-type') ?? ''),
  location: (res) => res.headers.get('location') ?? '',
})

/**
 * The Headers behind a `req` or `res` value: one header can be looked up there without building the
 * map of every header (`'x-debug' in req.headers`, expr/fast.ts).
 */
export function headersBehind(value: unknown): Headers | undefined {
  if (value instanceof RequestVars) return (value as unknown as { source: HttpExchange }).source.headers
  if (value instanceof ResponseVars) return (value as unknown as { source: ResponseParts }).source.headers
  return undefined
}

const ConnTs = variableClass<HttpExchange['conn']>('warren.ConnTs', {
  start: (c) => new Date(c.startedAt),
})

/** warren has no GeoIP database: the fields exist (so ngrok policies load) and are empty. */
const ConnGeo = variableClass<null>('warren.ConnGeo', {
  city: () => '',
  country: () => '',
  country_code: () => '',
  latitude: () => '',
  longitude: () => '',
  radius: () => '',
  subdivision: () => '',
})
const NO_GEO = new ConnGeo(null)

/** Filled when the edge terminated TLS (`ConnInfo.tls`); empty strings otherwise. */
const ConnTls = variableClass<HttpExchange['conn']>('warren.ConnTls', {
  cipher_suite: (c) => c.tls?.cipherSuite ?? '',
  ja4_fingerprint: (c) => c.tls?.ja4 ?? '',
  negotiated_alpn: (c) => c.tls?.alpn ?? '',
  session_resumed: () => false,
  sni: (c) => c.tls?.sni ?? '',
  version: (c) => c.tls?.version ?? '',
})

const Conn = variableClass<HttpExchange['conn']>('warren.Conn', {
  client_ip: (c) => c.clientIp,
  client_port: (c) => BigInt(c.clientPort),
  server_ip: (c) => c.serverIp,
  server_port: (c) => BigInt(c.serverPort),
  server_region: () => '',
  ts: (c) => new ConnTs(c),
  geo: () => NO_GEO,
  tls: (c) => new ConnTls(c),
})

const Endpoint = variableClass<HttpExchange['endpoint']>('warren.Endpoint', {
  id: (e) => e.id,
  url: (e) => e.url,
  addr: (e) => `${e.host}:${e.port}`,
  host: (e) => e.host,
  port: (e) => BigInt(e.port),
  protocol: (e) => e.scheme,
  binding: (e) => e.binding,
})

const Time = variableClass<null>('warren.Time', {
  now: () => rfc3339(new Date()),
})

/**
 * Variable fields whose value is a function of exchange fields: what the classes above compute for
 * them, written as code over the exchange `ex` (and `rt.x`, EXCHANGE_HELPERS). Generated code that
 * has the exchange (a phase's function, a template's) reads these there instead of through the
 * variable objects, so a rule such as `req.method == 'POST'` or a template such as
 * `${conn.client_ip}` makes none of them. The cached value and the read agree because every change
 * to the exchange forgets the cache (forgetVariables, forgetHeaderVariables); the exchange's method,
 * connection and endpoint never change. context.test.ts compares both ways.
 */
export const EXCHANGE_READS: Readonly<Record<string, string>> = {
  vars: 'ex.vars',
  'req.method': 'ex.method',
  'req.host': "(ex.headers.get('host') ?? ex.url.host)",
  'req.content_length': 'rt.x.contentLength(ex.headers)',
  'req.url.path': '(ex.urlParts ?? ex.url).pathname',
  'req.url.host': '(ex.urlParts ?? ex.url).hostname',
  'req.url.scheme': '(ex.urlParts ?? ex.url).protocol.slice(0, -1)',
  'req.url.query_params': 'rt.x.queryParams(ex.urlParts ?? ex.url)',
  ...Object.fromEntries(USER_AGENT_FIELDS.map((key) => [`req.user_agent.${key}`, `rt.x.userAgentOf(ex.headers.get('user-agent') ?? '').${key}`])),
  'conn.client_ip': 'ex.conn.clientIp',
  'conn.client_port': 'BigInt(ex.conn.clientPort)',
  'conn.server_ip': 'ex.conn.serverIp',
  'conn.server_port': 'BigInt(ex.conn.serverPort)',
  'conn.ts.start': 'new Date(ex.conn.startedAt)',
  'endpoint.id': 'ex.endpoint.id',
  'endpoint.url': 'ex.endpoint.url',
  'endpoint.host': 'ex.endpoint.host',
  'endpoint.protocol': 'ex.endpoint.scheme',
  'endpoint.binding': 'ex.endpoint.binding',
}

/** The functions EXCHANGE_READS code calls (as `rt.x`), the same the variable classes compute with. */
export const EXCHANGE_HELPERS = { contentLength, queryParams, userAgentOf }

/**
 * The class of every typed variable, by its path in expr/variables.ts (`req.url` …): env.ts registers
 * each as the cel-js type of that path.
 */
export const VARIABLE_CLASSES: Readonly<Record<string, VariableClass<never>>> = {
  conn: Conn,
  'conn.ts': ConnTs,
  'conn.geo': ConnGeo,
  'conn.tls': ConnTls,
  endpoint: Endpoint,
  req: RequestVars,
  'req.url': RequestUrl,
  'req.content_type': ContentType,
  'req.user_agent': UserAgentValue,
  'req.ts': RequestTs,
  res: ResponseVars,
  'res.content_type': ContentType,
  time: Time,
} as Record<string, VariableClass<never>>

/**
 * The CEL variables of one exchange in ngrok's names (`req.url.path`, `conn.client_ip`…). Getters on
 * the prototype: creating one costs an allocation, and a field is computed only when read.
 */
class ExchangeVariables {
  readonly #ex: HttpExchange
  #conn: VariableValue | undefined
  #endpoint: VariableValue | undefined
  #req: VariableValue | undefined
  #res: VariableValue | undefined
  #time: VariableValue | undefined
  #actions: Record<string, unknown> | undefined

  constructor(ex: HttpExchange) {
    this.#ex = ex
  }
  get conn(): VariableValue {
    return (this.#conn ??= new Conn(this.#ex.conn))
  }
  get endpoint(): VariableValue {
    return (this.#endpoint ??= new Endpoint(this.#ex.endpoint))
  }
  get req(): VariableValue {
    return (this.#req ??= new RequestVars(this.#ex))
  }
  get res(): VariableValue | undefined {
    // Only on_http_response declares `res`; elsewhere there is no response to describe.
    const response = this.#ex.response
    return response ? (this.#res ??= new ResponseVars(response)) : undefined
  }
  get time(): VariableValue {
    return (this.#time ??= new Time(null))
  }
  get vars(): Record<string, unknown> {
    return this.#ex.vars
  }
  get actions(): Record<string, unknown> {
    return (this.#actions ??= { ngrok: this.#ex.actions })
  }
  /** Drops what was computed from the response's headers (on_http_response) or the request's. */
  forgetHeaders(response: boolean): void {
    if (response) this.#res = undefined
    else if (this.#req) forgetRequestHeaders(this.#req)
  }
}

/**
 * The CEL variables of `ex`, kept on the exchange so every rule, template and action of a phase
 * shares what was already computed (parsed headers, cookies, the URL parts). `vars` and action
 * results are read live; anything that changes the request or the response calls `forgetVariables`.
 */
export function celContext(ex: HttpExchange): Record<string, unknown> {
  return (ex.variables ??= new ExchangeVariables(ex) as unknown as Record<string, unknown>)
}

/**
 * Drops the variables computed from header lines of the response (`response`) or of the request:
 * an action changed those headers and nothing else (the URL, the connection, `vars` stay).
 */
export function forgetHeaderVariables(ex: HttpExchange, response: boolean): void {
  ;(ex.variables as ExchangeVariables | undefined)?.forgetHeaders(response)
}

/** Drops the variables computed so far: the request or the response changed under them. */
export function forgetVariables(ex: HttpExchange): void {
  ex.variables = undefined
}
