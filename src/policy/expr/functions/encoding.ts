import type { Environment } from '@marcbachmann/cel-js'
import { fromJson, toPlain, toText } from '../values.ts'
import { defineNamespace } from './namespace.ts'

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Strict standard base64 (padding required), as Go's base64.StdEncoding decodes it. */
export function base64Decode(text: string): Uint8Array {
  if (!BASE64.test(text)) throw new RangeError(`base64.decode: "${text.length > 40 ? `${text.slice(0, 40)}…` : text}" is not valid base64`)
  return new Uint8Array(Buffer.from(text, 'base64'))
}

function base64Encode(data: Uint8Array | string): string {
  return Buffer.from(data).toString('base64')
}

/** Go's url.QueryEscape: everything but A-Z a-z 0-9 - _ . ~ is %-escaped, space becomes +. */
export function queryEscape(text: string): string {
  return encodeURIComponent(text)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+')
}

/** Go's url.QueryUnescape: + is a space; a bad %-escape is an error. */
export function queryUnescape(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '))
  } catch {
    throw new RangeError(`url.unescape: "${text}" has an invalid %-escape`)
  }
}

const QUERY_PART = /^[^=&\s]+=[^&\s]*$/

/** True for `a=b&c=d` style text: every part is key=value and every %-escape is valid. */
export function isQueryString(text: string): boolean {
  if (text === '') return false
  for (const part of text.split('&')) {
    if (!QUERY_PART.test(part)) return false
    try {
      decodeURIComponent(part.replace(/\+/g, ' '))
    } catch {
      return false
    }
  }
  return true
}

/** `a=b&c=d&c=e` → `{a: 'b', c: ['d', 'e']}`: one value stays a string, repeated keys make a list. */
export function queryDecode(text: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  const source = text.startsWith('?') ? text.slice(1) : text
  if (source === '') return out
  for (const part of source.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const key = queryUnescape(eq === -1 ? part : part.slice(0, eq))
    const value = eq === -1 ? '' : queryUnescape(part.slice(eq + 1))
    const prev = out[key]
    if (prev === undefined) out[key] = value
    else if (Array.isArray(prev)) prev.push(value)
    else out[key] = [prev, value]
  }
  return out
}

/** The inverse of queryDecode; keys sorted as Go's url.Values.Encode sorts them. */
export function queryEncode(map: unknown): string {
  const plain = toPlain(map)
  if (plain === null || typeof plain !== 'object' || Array.isArray(plain)) throw new TypeError('queryString.encode: needs a map')
  const parts: string[] = []
  for (const key of Object.keys(plain).sort()) {
    const value = (plain as Record<string, unknown>)[key]
    for (const v of Array.isArray(value) ? value : [value]) parts.push(`${queryEscape(key)}=${queryEscape(toText(v))}`)
  }
  return parts.join('&')
}

/** Go's json.Valid. */
function isJson(text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

function jsonDecode(text: string): unknown {
  try {
    return fromJson(text)
  } catch (err) {
    throw new RangeError(`json.decode: ${err instanceof Error ? err.message : String(err)}`)
  }
}

function jsonEncode(value: unknown): string {
  return JSON.stringify(toPlain(value))
}

/** True for absolute URLs with a scheme and a host (`https://ngrok.com`), as ngrok's `isURL`. */
export function isUrl(text: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#\s]+/.test(text) || /\s/.test(text)) return false
  return URL.canParse(text)
}

/**
 * Go's url.URL fields in ngrok's snake_case: `scheme`, `user`, `host` (with port), `hostname`,
 * `port`, `path`, `raw_query`, `fragment`. Text without a scheme is a relative reference.
 */
export function parseUrl(text: string): Record<string, string> {
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(text) && URL.canParse(text)) {
    const u = new URL(text)
    return {
      scheme: u.protocol.slice(0, -1),
      user: u.username === '' ? '' : decodeURIComponent(u.password === '' ? u.username : `${u.username}:${u.password}`),
      host: u.host,
      hostname: u.hostname,
      port: u.port,
      path: decodeURIComponent(u.pathname),
      raw_query: u.search.slice(1),
      fragment: decodeURIComponent(u.hash.slice(1)),
    }
  }
  const hash = text.indexOf('#')
  const beforeHash = hash === -1 ? text : text.slice(0, hash)
  const q = beforeHash.indexOf('?')
  return {
    scheme: '',
    user: '',
    host: '',
    hostname: '',
    port: '',
    path: q === -1 ? beforeHash : beforeHash.slice(0, q),
    raw_query: q === -1 ? '' : beforeHash.slice(q + 1),
    fragment: hash === -1 ? '' : text.slice(hash + 1),
  }
}

/**
 * Encoders and decoders: `base64.*`, `basic_auth.encode`, `json.*`, `queryString.*`, `url.*`, and
 * the method forms (`'x'.encodeBase64()`, `[…].encodeJson()`, `{…}.encodeQueryString()`…).
 */
export function registerEncoding(env: Environment): void {
  const base64 = defineNamespace(env, 'base64')
  env.registerFunction(`${base64}.decode(string): bytes`, (_ns: unknown, s: string) => base64Decode(s))
  env.registerFunction(`${base64}.encode(bytes): string`, (_ns: unknown, b: Uint8Array) => base64Encode(b))
  env.registerFunction(`${base64}.encode(string): string`, (_ns: unknown, s: string) => base64Encode(s))
  env.registerFunction('string.encodeBase64(): string', base64Encode)
  env.registerFunction('string.decodeBase64(): string', (s: string) => Buffer.from(base64Decode(s)).toString('utf8'))

  const basicAuth = defineNamespace(env, 'basic_auth')
  env.registerFunction(`${basicAuth}.encode(string, string): string`, (_ns: unknown, user: string, password: string) => `Basic ${base64Encode(`${user}:${password}`)}`)

  const json = defineNamespace(env, 'json')
  env.registerFunction(`${json}.decode(string): dyn`, (_ns: unknown, s: string) => jsonDecode(s))
  env.registerFunction(`${json}.encode(dyn): string`, (_ns: unknown, v: unknown) => jsonEncode(v))
  env.registerFunction('string.decodeJson(): dyn', jsonDecode)
  env.registerFunction('string.isJson(): bool', isJson)
  env.registerFunction('list.encodeJson(): string', jsonEncode)
  env.registerFunction('map.encodeJson(): string', jsonEncode)

  const queryString = defineNamespace(env, 'queryString')
  env.registerFunction(`${queryString}.decode(string): map<string, dyn>`, (_ns: unknown, s: string) => queryDecode(s))
  env.registerFunction(`${queryString}.encode(map): string`, (_ns: unknown, m: unknown) => queryEncode(m))
  env.registerFunction('string.decodeQueryString(): map<string, dyn>', queryDecode)
  env.registerFunction('string.isQueryString(): bool', isQueryString)
  env.registerFunction('map.encodeQueryString(): string', queryEncode)

  const url = defineNamespace(env, 'url')
  env.registerFunction(`${url}.escape(string): string`, (_ns: unknown, s: string) => queryEscape(s))
  env.registerFunction(`${url}.unescape(string): string`, (_ns: unknown, s: string) => queryUnescape(s))
  env.registerFunction(`${url}.parse(string): map<string, string>`, (_ns: unknown, s: string) => parseUrl(s))
  env.registerFunction('string.escapeUrl(): string', queryEscape)
  env.registerFunction('string.unescapeUrl(): string', queryUnescape)
  env.registerFunction('string.parseUrl(): map<string, string>', parseUrl)
  env.registerFunction('string.isURL(): bool', isUrl)
}
