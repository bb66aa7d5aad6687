import type { RequestHead } from '../http1/head.ts'
import type { KeepsLines } from '../lib/header-lines.ts'
import type { ConnInfo, EndpointInfo, HttpExchange, UrlParts } from '../policy/types.ts'
import { HOP_SET } from './hop-headers.ts'
import { checkName, LineHeaders } from './line-headers.ts'

/** ASCII bytes WHATWG URL parsing leaves alone in an http path and query (not `'`, `\\`, `"`, `<`, `>`, `^`, `` ` ``, `{`, `|`, `}`, space, controls). */
const KEPT = new Uint8Array(128)
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&()*+,;=:@/?%") KEPT[c.charCodeAt(0)] = 1

/**
 * True when URL parsing gives back `path` (which starts with `/`) as it is: only KEPT bytes, no
 * possible dot segment (`/.`, `/%2e`), no empty query. A byte loop: this runs for every relayed
 * request with rules.
 */
function asParsed(path: string): boolean {
  // An empty query (`/a?`) is no query to URL: `search` is empty.
  if (path.charCodeAt(path.length - 1) === 63) return false
  for (let i = 1; i < path.length; i++) {
    const c = path.charCodeAt(i)
    if (c >= 128 || KEPT[c] === 0) return false
    const before = path.charCodeAt(i - 1)
    if (before === 47 && (c === 46 || (c === 37 && path.charCodeAt(i + 1) === 50 && (path.charCodeAt(i + 2) | 0x20) === 101))) return false
  }
  return true
}

/**
 * A Host that URL parsing gives back unchanged: lower-case LDH labels whose last one starts with a
 * letter (so it is no IPv4 number in any notation), or a dotted quad in canonical form; then an
 * optional port without leading zeros. Upper case, `xn--` labels, IPv6 and anything else go to `URL`.
 */
const PLAIN_HOST = /^(?:(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*[a-z](?:[a-z0-9-]*[a-z0-9])?|(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d))(?::([1-9]\d{0,4}))?$/

const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: '80', https: '443' }

/**
 * The parts `new URL(`${scheme}://${host}${path}`)` would give, worked out without parsing when the
 * host and the origin-form `path` are already what the parser returns (PLAIN_HOST, `asParsed`); else
 * undefined and the caller parses. Equal to URL's for every input it accepts (relay-exchange.test.ts
 * compares the two on a corpus).
 */
export function headUrl(scheme: string, host: string, path: string): UrlParts | undefined {
  if (path.charCodeAt(0) !== 47 || !asParsed(path)) return undefined
  const authority = authorityOf(scheme, host)
  if (!authority) return undefined
  const query = path.indexOf('?')
  return {
    href: `${scheme}://${authority.host}${path}`,
    protocol: authority.protocol,
    host: authority.host,
    hostname: authority.hostname,
    port: authority.port,
    pathname: query === -1 ? path : path.slice(0, query),
    search: query === -1 ? '' : path.slice(query),
    username: '',
    password: '',
  }
}

type Authority = Pick<UrlParts, 'protocol' | 'host' | 'hostname' | 'port'>

/** The last Host checked and what it gave: an endpoint's requests carry the same Host one after another. */
let lastAuthority: { scheme: string; host: string; authority: Authority | undefined } = { scheme: '', host: '', authority: undefined }

/** URL's scheme and authority parts of a PLAIN_HOST `host`, else undefined. */
function authorityOf(scheme: string, host: string): Authority | undefined {
  if (lastAuthority.host === host && lastAuthority.scheme === scheme) return lastAuthority.authority
  const plain = DEFAULT_PORTS[scheme] === undefined || host.includes('xn--') ? undefined : PLAIN_HOST.exec(host)
  let authority: Authority | undefined
  if (plain && !(plain[1] !== undefined && Number(plain[1]) > 65535)) {
    const port = plain[1] === DEFAULT_PORTS[scheme] ? '' : (plain[1] ?? '')
    const hostname = plain[1] === undefined ? host : host.slice(0, host.length - plain[1].length - 1)
    authority = { protocol: `${scheme}:`, host: port === '' ? hostname : host, hostname, port }
  }
  lastAuthority = { scheme, host, authority }
  return authority
}

/**
 * The exchange a policy runs on inside the byte relay (relay-route.ts), made from the request head
 * without a `Request`: the URL and the header lines are built the first time something reads them,
 * and the header lines stay lines (line-headers.ts), so the relay writes the policy's edits into the
 * head it sends. What a policy sees is what the pipeline's exchange shows for the same request: the
 * same URL, and the same headers (hop-by-hop fields, those the client's `Connection` names and
 * `Expect` left out, as the HTTP/1.1 engine leaves them out of the pipeline's Request).
 */
export class RelayExchange implements HttpExchange {
  readonly endpoint: EndpointInfo
  readonly conn: ConnInfo
  readonly method: string
  readonly httpVersion: string
  variables: Record<string, unknown> | undefined = undefined
  /** Variables, action results and log metadata: made when first used (most relayed requests never do). */
  #vars: Record<string, unknown> | undefined
  #actions: Record<string, unknown> | undefined
  #logMetadata: Record<string, unknown> | undefined
  readonly #head: RequestHead
  readonly #scheme: string
  #url: URL | undefined
  #parts: UrlParts | undefined
  #headers: HeadHeaders | undefined
  /** The URL could not be parsed: the pipeline refuses such a request (400), the relay must not serve it. */
  invalidUrl = false

  constructor(head: RequestHead, endpoint: EndpointInfo, conn: ConnInfo, scheme: string) {
    this.#head = head
    this.endpoint = endpoint
    this.conn = conn
    this.method = head.method
    this.httpVersion = head.version
    this.#scheme = scheme
  }

  get vars(): Record<string, unknown> {
    return (this.#vars ??= {})
  }

  set vars(vars: Record<string, unknown>) {
    this.#vars = vars
  }

  get actions(): Record<string, unknown> {
    return (this.#actions ??= {})
  }

  get logMetadata(): Record<string, unknown> {
    return (this.#logMetadata ??= {})
  }

  get url(): URL {
    if (this.#url) return this.#url
    try {
      return (this.#url = new URL(`${this.#scheme}://${this.#head.parsed.host}${this.#head.parsed.path}`))
    } catch (err) {
      this.invalidUrl = true
      throw err
    }
  }

  set url(url: URL) {
    this.#url = url
  }

  /** The URL's parts: read from the head when it is already normal (headUrl), else the parsed URL's. */
  get urlParts(): UrlParts {
    return this.#url ?? (this.#parts ??= headUrl(this.#scheme, this.#head.parsed.host, this.#head.parsed.path) ?? this.url)
  }

  get headers(): HeadHeaders {
    return (this.#headers ??= new HeadHeaders(this.#head))
  }

  set headers(_headers: Headers) {
    // No relayed action replaces the headers; one that did would need the pipeline.
    throw new TypeError('the relay exchange keeps its own header lines')
  }

  /**
   * The header lines as the policy left them, once something needed them as a list (a removed or
   * replaced header, a walk over all of them); undefined while the client's lines are unchanged, with
   * at most lines appended after them (`addedLines`).
   */
  get headerLines(): LineHeaders | undefined {
    return this.#headers?.built
  }

  /** Lines add-headers appended while `headerLines` is undefined: they go upstream after the client's. */
  get addedLines(): AddedLines | undefined {
    return this.#headers?.added
  }

  /**
   * The request target the upstream gets: the URL's path and query, as the pipeline sends them; undefined
   * when the URL does not parse (the pipeline answers 400).
   */
  target(): string | undefined {
    const path = this.#head.parsed.path
    // Nothing in a relayed policy sets the URL: parsing gives the path back unless it has something to change.
    if (asParsed(path)) return path
    try {
      return this.url.pathname + this.url.search
    } catch {
      return undefined
    }
  }
}

/** Header lines appended to a request head: lower-case names and their values, in order. */
export interface AddedLines {
  readonly names: string[]
  readonly values: string[]
}

const latin1Slice = Buffer.prototype.latin1Slice as (this: Uint8Array, start: number, end: number) => string

/**
 * The relay exchange's header lines as `Headers`, over the request head. `get`, `has` and add-headers'
 * `appendLine` answer from the head's bytes and the lines appended so far, so a policy that reads a
 * header or adds some makes no list of every line (3 + 4 arrays and two strings per line), and the
 * relay copies the client's lines as bytes with the appended ones after them (relay-route.ts). Anything
 * else (set, delete, a walk over every header) builds the LineHeaders once (`built`) and goes on there.
 * What it shows is what the pipeline's exchange shows for the same head: hop-by-hop fields, those the
 * client's `Connection` names and `Expect` left out.
 */
export class HeadHeaders implements Headers, KeepsLines {
  readonly #head: RequestHead
  added: AddedLines | undefined
  built: LineHeaders | undefined

  constructor(head: RequestHead) {
    this.#head = head
  }

  /** The lines as a list, made on first need from the head's visible lines and the appended ones. */
  #lines(): LineHeaders {
    if (this.built) return this.built
    const drop = this.#head.parsed.connectionTokens
    const fields = this.#head.fields()
    const names: string[] = []
    const lower: string[] = []
    const values: string[] = []
    const origin: number[] = []
    for (let k = 0; k < fields.names.length; k++) {
      const name = fields.lower[k]!
      if (!this.#visible(name, drop)) continue
      names.push(fields.names[k]!)
      lower.push(name)
      values.push(fields.values[k]!)
      origin.push(k)
    }
    const lines = new LineHeaders(names, values, lower, origin)
    const added = this.added
    if (added) for (let k = 0; k < added.names.length; k++) lines.appendLine(added.names[k]!, added.values[k]!)
    this.added = undefined
    return (this.built = lines)
  }

  #visible(lower: string, drop: readonly string[] = this.#head.parsed.connectionTokens): boolean {
    return !HOP_SET.has(lower) && lower !== 'expect' && !(drop.length && drop.includes(lower))
  }

  appendLine(name: string, value: string): void {
    if (this.built) return this.built.appendLine(name, value)
    // What LineHeaders.appendLine checks (the rest add-headers checked): a character past latin1.
    for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) > 255) throw new TypeError(`Header '${name}' has invalid value`)
    const added = (this.added ??= { names: [], values: [] })
    added.names.push(name)
    added.values.push(value)
  }

  get(name: string): string | null {
    if (this.built) return this.built.get(name)
    const want = name.toLowerCase()
    // As LineHeaders (Bun's Headers): Cookie lines joined as one cookie list, any other name's by `, `.
    const join = want === 'cookie' ? '; ' : ', '
    let out: string | null = null
    if (this.#visible(want)) {
      const { buf, lines } = this.#head.parsed
      for (let k = 0; k < lines.length; k += 4) {
        if (!named(buf, lines[k]!, lines[k + 1]!, want)) continue
        const value = latin1Slice.call(buf, lines[k + 2]!, lines[k + 3]!)
        out = out === null ? value : out + join + value
      }
    }
    const added = this.added
    if (added) for (let k = 0; k < added.names.length; k++) if (added.names[k] === want) out = out === null ? added.values[k]! : out + join + added.values[k]!
    if (out === null) checkName(name)
    return out
  }

  has(name: string): boolean {
    if (this.built) return this.built.has(name)
    const want = name.toLowerCase()
    if (this.#visible(want)) {
      const { buf, lines } = this.#head.parsed
      for (let k = 0; k < lines.length; k += 4) if (named(buf, lines[k]!, lines[k + 1]!, want)) return true
    }
    if (this.added?.names.includes(want)) return true
    checkName(name)
    return false
  }

  /** The lines in order, as the upstream gets them (tests). */
  lines(): [name: string, value: string][] {
    return this.#lines().lines()
  }

  getSetCookie(): string[] {
    return this.#lines().getSetCookie()
  }

  getAll(name: 'set-cookie' | 'Set-Cookie'): string[] {
    return this.#lines().getAll(name)
  }

  append(name: string, value: string): void {
    this.#lines().append(name, value)
  }

  set(name: string, value: string): void {
    this.#lines().set(name, value)
  }

  delete(name: string): void {
    this.#lines().delete(name)
  }

  get count(): number {
    return this.#lines().count
  }

  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    this.#lines().forEach((value, key) => callback.call(thisArg, value, key, this))
  }

  entries(): ReturnType<Headers['entries']> {
    return this.#lines().entries()
  }

  keys(): ReturnType<Headers['keys']> {
    return this.#lines().keys()
  }

  values(): ReturnType<Headers['values']> {
    return this.#lines().values()
  }

  [Symbol.iterator](): ReturnType<Headers['entries']> {
    return this.#lines()[Symbol.iterator]()
  }

  toJSON(): Record<string, string> & { 'set-cookie'?: string[] } {
    return this.#lines().toJSON()
  }
}

/** True when the header name `buf[n0, n1)` is `lower` (a lower-case name), ASCII case-insensitively. */
function named(buf: Uint8Array, n0: number, n1: number, lower: string): boolean {
  if (n1 - n0 !== lower.length) return false
  for (let k = 0; k < lower.length; k++) {
    const c = buf[n0 + k]!
    if ((c >= 65 && c <= 90 ? c + 32 : c) !== lower.charCodeAt(k)) return false
  }
  return true
}
