import { HOP_SET as HOP } from '../proxy/hop-headers.ts'
import type { ParsedHead } from './parse-head.ts'

/** The header lines of a head as three parallel lists: names as sent, the same lower-cased, values. */
export interface HeadFields {
  readonly names: readonly string[]
  readonly lower: readonly string[]
  readonly values: readonly string[]
}

/**
 * The request model over a parsed head: the header lines stay offsets into the read buffer until a
 * caller asks for a name or value; then the ordered (name, value) list is built once, with each name
 * lower-cased once (the relay's exchange, its upstream head and the lookups here all compare
 * lower-case names). Duplicates and order survive, which `Headers` would not give (it joins repeated
 * names into one line).
 */
export class RequestHead {
  readonly parsed: ParsedHead
  #fields: HeadFields | undefined

  constructor(parsed: ParsedHead) {
    this.parsed = parsed
  }

  get method(): string {
    return this.parsed.method
  }

  /** `HTTP/1.0` or `HTTP/1.1`, as the client sent it. */
  get version(): string {
    return this.parsed.minor === 1 ? 'HTTP/1.1' : 'HTTP/1.0'
  }

  /** The header lines in arrival order, built on first use and kept. */
  fields(): HeadFields {
    if (this.#fields) return this.#fields
    const { buf, lines } = this.parsed
    const names: string[] = []
    const lower: string[] = []
    const values: string[] = []
    for (let k = 0; k < lines.length; k += 4) {
      // latin1: header bytes are ByteStrings, and obs-text must come back as the same bytes.
      const name = Buffer.prototype.latin1Slice.call(buf, lines[k]!, lines[k + 1]!) as string
      names.push(name)
      lower.push(name.toLowerCase())
      values.push(Buffer.prototype.latin1Slice.call(buf, lines[k + 2]!, lines[k + 3]!))
    }
    return (this.#fields = { names, lower, values })
  }

  /** The header lines in arrival order, names as sent. */
  lines(): [name: string, value: string][] {
    const { names, values } = this.fields()
    return names.map((name, k) => [name, values[k]!])
  }

  /** Every value of `name` (case-insensitive), in order. */
  getAll(name: string): string[] {
    const { lower, values } = this.fields()
    const want = name.toLowerCase()
    const out: string[] = []
    for (let k = 0; k < lower.length; k++) if (lower[k] === want) out.push(values[k]!)
    return out
  }

  /**
   * The end-to-end headers as `Headers`: hop-by-hop lines, and those `Connection` names, are left
   * out before anything else (the edge's own X-Forwarded-* are added later, so a client cannot name
   * them in `Connection` to have them removed).
   */
  toHeaders(): Headers {
    const { lower, values } = this.fields()
    const drop = this.parsed.connectionTokens
    const headers = new Headers()
    for (let k = 0; k < lower.length; k++) {
      const name = lower[k]!
      if (HOP.has(name) || drop.includes(name)) continue
      headers.append(name, values[k]!)
    }
    // A websocket handshake keeps what makes it one, and nothing else `Connection` said.
    if (this.parsed.upgrade) {
      headers.set('connection', 'upgrade')
      for (const value of this.getAll('upgrade')) headers.append('upgrade', value)
    }
    return headers
  }

  /** End-to-end header names the client sent on more than one line, with those lines in order. */
  repeated(): Map<string, string[]> | undefined {
    const { lower: names, values } = this.fields()
    let seen: Map<string, string[]> | undefined
    let out: Map<string, string[]> | undefined
    for (let k = 0; k < names.length; k++) {
      const lower = names[k]!
      seen ??= new Map()
      const lines = seen.get(lower)
      if (!lines) seen.set(lower, [values[k]!])
      else {
        lines.push(values[k]!)
        if (!HOP.has(lower) && !this.parsed.connectionTokens.includes(lower)) (out ??= new Map()).set(lower, lines)
      }
    }
    return out
  }
}
