import type { HeadFields } from '../http1/head.ts'
import { TCHAR } from '../http1/parse-head.ts'
import type { KeepsLines } from '../lib/header-lines.ts'

/** What `Headers` refuses in a value (Bun: "has invalid value"): CR, LF, NUL, and anything past latin1. */
const BAD_VALUE = /[\0\r\n\u0100-\uffff]/
const EDGE_WHITESPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g

/**
 * A request's header lines behind the `Headers` interface, for policies run on the byte relay
 * (relay-exchange.ts). Reads answer exactly as the pipeline's `Headers` would for the same lines
 * (values of one name joined by `, `, Cookie's by `; `, names case-insensitive, the same TypeErrors), while the lines
 * themselves stay apart and in order: an appended value is a line of its own after the others, and
 * `lines()` is what the relay writes upstream. Anything that walks every header (`forEach`, the
 * iterators) goes through a real `Headers` made on the spot, so its order and joining are Bun's own.
 */
export class LineHeaders implements Headers, KeepsLines {
  /** Names as sent (client lines) or as a policy wrote them (lower-cased by add-headers). */
  readonly #names: string[]
  readonly #lower: string[]
  readonly #values: string[]
  /** For the leading lines still exactly the client's: the index of each in the request head. */
  readonly #origin: number[]

  /**
   * `lower`: the names lower-cased, when the caller has them already (RequestHead keeps them).
   * `origin`: the head's line index of each line, when these are a request head's lines.
   */
  constructor(names: string[], values: string[], lower: string[] = names.map((n) => n.toLowerCase()), origin: number[] = []) {
    this.#names = names
    this.#values = values
    this.#lower = lower
    this.#origin = origin
  }

  /**
   * The head's line index of each leading line that is still the client's as sent (none was
   * replaced or removed up to it): the relay copies those lines' bytes (relay-route.ts).
   */
  origins(): readonly number[] {
    return this.#origin
  }

  /** The lines in order, as RequestHead lists them: what the upstream gets. */
  lines(): [name: string, value: string][] {
    return this.#names.map((name, k) => [name, this.#values[k]!])
  }

  /** The same lines as parallel lists (live: later edits show), for the relay's writer. */
  fields(): HeadFields {
    return { names: this.#names, lower: this.#lower, values: this.#values }
  }

  /**
   * add-headers' line (lib/header-lines.ts `appendLine`): the name is a lower-case token checked at
   * load and the value came through `headerValue` (trimmed, no CR, LF or NUL), so only what
   * `append` would still refuse is checked: a character past latin1.
   */
  appendLine(name: string, value: string): void {
    for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) > 255) throw new TypeError(`Header '${name}' has invalid value`)
    this.#names.push(name)
    this.#lower.push(name)
    this.#values.push(value)
  }

  get(name: string): string | null {
    const want = name.toLowerCase()
    // Bun's Headers joins Cookie lines as one cookie list (`; `), every other name as a list (`, `).
    const join = want === 'cookie' ? '; ' : ', '
    let out: string | null = null
    for (let k = 0; k < this.#lower.length; k++) if (this.#lower[k] === want) out = out === null ? this.#values[k]! : out + join + this.#values[k]!
    if (out === null) checkName(name)
    return out
  }

  has(name: string): boolean {
    if (this.#lower.includes(name.toLowerCase())) return true
    checkName(name)
    return false
  }

  getSetCookie(): string[] {
    const out: string[] = []
    for (let k = 0; k < this.#lower.length; k++) if (this.#lower[k] === 'set-cookie') out.push(this.#values[k]!)
    return out
  }

  getAll(name: 'set-cookie' | 'Set-Cookie'): string[] {
    return name.toLowerCase() === 'set-cookie' ? this.getSetCookie() : []
  }

  append(name: string, value: string): void {
    checkName(name)
    value = normalized(name, value)
    this.#names.push(name.toLowerCase())
    this.#lower.push(name.toLowerCase())
    this.#values.push(value)
  }

  /** Replaces the first line of `name` and drops the others (the Fetch standard's "set"), or appends. */
  set(name: string, value: string): void {
    checkName(name)
    value = normalized(name, value)
    const want = name.toLowerCase()
    const at = this.#lower.indexOf(want)
    if (at === -1) return this.append(name, value)
    this.#values[at] = value
    this.#origin.length = Math.min(this.#origin.length, at)
    this.#drop(want, at + 1)
  }

  delete(name: string): void {
    checkName(name)
    this.#drop(name.toLowerCase(), 0)
  }

  #drop(lower: string, from: number): void {
    for (let k = this.#lower.length - 1; k >= from; k--) {
      if (this.#lower[k] !== lower) continue
      this.#origin.length = Math.min(this.#origin.length, k)
      this.#names.splice(k, 1)
      this.#lower.splice(k, 1)
      this.#values.splice(k, 1)
    }
  }

  /** The same lines as a real `Headers` (joined per name, as the pipeline holds them). */
  toHeaders(): Headers {
    const headers = new Headers()
    for (let k = 0; k < this.#lower.length; k++) headers.append(this.#lower[k]!, this.#values[k]!)
    return headers
  }

  get count(): number {
    return this.toHeaders().count
  }

  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    this.toHeaders().forEach((value, key) => callback.call(thisArg, value, key, this))
  }

  entries(): ReturnType<Headers['entries']> {
    return this.toHeaders().entries()
  }

  keys(): ReturnType<Headers['keys']> {
    return this.toHeaders().keys()
  }

  values(): ReturnType<Headers['values']> {
    return this.toHeaders().values()
  }

  [Symbol.iterator](): ReturnType<Headers['entries']> {
    return this.toHeaders()[Symbol.iterator]()
  }

  toJSON(): Record<string, string> & { 'set-cookie'?: string[] } {
    return this.toHeaders().toJSON()
  }
}

/** A token, as `Headers` wants a name (a byte-table loop: `'x-debug' in req.headers` checks its name per request). */
export function checkName(name: string): void {
  let ok = name.length > 0
  for (let i = 0; ok && i < name.length; i++) ok = name.charCodeAt(i) < 256 && TCHAR[name.charCodeAt(i)] === 1
  if (!ok) throw new TypeError(`Invalid header name: '${name}'`)
}

/** Tab, LF, CR, space: what `Headers` trims from both ends of a value. */
function httpWhitespace(code: number): boolean {
  return code === 32 || code === 9 || code === 10 || code === 13
}

/** The value as `Headers` keeps it (HTTP whitespace trimmed at both ends), or its TypeError. */
function normalized(name: string, value: string): string {
  // Values from add-headers come trimmed already: the replace is only paid when there is something to trim.
  const trimmed = value.length && (httpWhitespace(value.charCodeAt(0)) || httpWhitespace(value.charCodeAt(value.length - 1))) ? value.replace(EDGE_WHITESPACE, '') : value
  if (BAD_VALUE.test(trimmed)) throw new TypeError(`Header '${name}' has invalid value`)
  return trimmed
}
