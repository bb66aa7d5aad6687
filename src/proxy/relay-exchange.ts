import type { RequestHead } from '../http1/head.ts'
import type { ConnInfo, EndpointInfo, HttpExchange } from '../policy/types.ts'
import { HOP_BY_HOP } from './hop-headers.ts'
import { LineHeaders } from './line-headers.ts'

const HOP: ReadonlySet<string> = new Set(HOP_BY_HOP)

/**
 * A path and query that WHATWG URL parsing leaves exactly as they are: no dot segments (`/.`,
 * `%2e`), no backslash, nothing it percent-encodes. Anything else is sent as the URL has it.
 */
const AS_PARSED = /^\/[A-Za-z0-9\-._~!$&()*+,;=:@/?%]*$/
const DOT_SEGMENT = /\/\.|%2e/i

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
  vars: Record<string, unknown> = {}
  actions: Record<string, unknown> = {}
  logMetadata: Record<string, unknown> = {}
  variables: Record<string, unknown> | undefined = undefined
  readonly #head: RequestHead
  readonly #scheme: string
  #url: URL | undefined
  #headers: LineHeaders | undefined
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

  get headers(): LineHeaders {
    if (this.#headers) return this.#headers
    const drop = this.#head.parsed.connectionTokens
    const names: string[] = []
    const values: string[] = []
    for (const [name, value] of this.#head.lines()) {
      const lower = name.toLowerCase()
      if (HOP.has(lower) || lower === 'expect' || (drop.length && drop.includes(lower))) continue
      names.push(name)
      values.push(value)
    }
    return (this.#headers = new LineHeaders(names, values))
  }

  set headers(_headers: Headers) {
    // No relayed action replaces the headers; one that did would need the pipeline.
    throw new TypeError('the relay exchange keeps its own header lines')
  }

  /** The header lines as the policy left them, or undefined when nothing read or changed them (the client's go as sent). */
  get headerLines(): LineHeaders | undefined {
    return this.#headers
  }

  /** The request target the upstream gets: the URL's path and query, as the pipeline sends them. */
  target(): string {
    const path = this.#head.parsed.path
    if (!this.#url && AS_PARSED.test(path) && !DOT_SEGMENT.test(path)) return path
    return this.url.pathname + this.url.search
  }
}
