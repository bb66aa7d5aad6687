import { HOP_SET as HOP } from '../proxy/hop-headers.ts'
import type { ParsedHead } from './parse-head.ts'

/**
 * The request model over a parsed head: the header lines stay offsets into the read buffer until a
 * caller asks for a name or value; then the ordered (name, value) list is built once. Duplicates and
 * order survive, which `Headers` would not give (it joins repeated names into one line).
 */
export class RequestHead {
  readonly parsed: ParsedHead
  #names: string[] | undefined
  #values: string[] | undefined

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

  #build(): void {
    const { buf, lines } = this.parsed
    const names: string[] = []
    const values: string[] = []
    for (let k = 0; k < lines.length; k += 4) {
      // latin1: header bytes are ByteStrings, and obs-text must come back as the same bytes.
      names.push(Buffer.prototype.latin1Slice.call(buf, lines[k]!, lines[k + 1]!))
      values.push(Buffer.prototype.latin1Slice.call(buf, lines[k + 2]!, lines[k + 3]!))
    }
    this.#names = names
    this.#values = values
  }

  /** The header lines in arrival order, names as sent. */
  lines(): [name: string, value: string][] {
    if (!this.#names) this.#build()
    return this.#names!.map((name, k) => [name, this.#values![k]!])
  }

  /** Every value of `name` (case-insensitive), in order. */
  getAll(name: string): string[] {
    if (!this.#names) this.#build()
    const want = name.toLowerCase()
    const out: string[] = []
    for (let k = 0; k < this.#names!.length; k++) if (this.#names![k]!.toLowerCase() === want) out.push(this.#values![k]!)
    return out
  }

  /**
   * The end-to-end headers as `Headers`: hop-by-hop lines, and those `Connection` names, are left
   * out before anything else (the edge's own X-Forwarded-* are added later, so a client cannot name
   * them in `Connection` to have them removed).
   */
  toHeaders(): Headers {
    if (!this.#names) this.#build()
    const drop = this.parsed.connectionTokens
    const headers = new Headers()
    for (let k = 0; k < this.#names!.length; k++) {
      const lower = this.#names![k]!.toLowerCase()
      if (HOP.has(lower) || drop.includes(lower)) continue
      headers.append(lower, this.#values![k]!)
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
    if (!this.#names) this.#build()
    let seen: Map<string, string[]> | undefined
    let out: Map<string, string[]> | undefined
    for (let k = 0; k < this.#names!.length; k++) {
      const lower = this.#names![k]!.toLowerCase()
      seen ??= new Map()
      const lines = seen.get(lower)
      if (!lines) seen.set(lower, [this.#values![k]!])
      else {
        lines.push(this.#values![k]!)
        if (!HOP.has(lower) && !this.parsed.connectionTokens.includes(lower)) (out ??= new Map()).set(lower, lines)
      }
    }
    return out
  }
}
