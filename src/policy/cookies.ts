import { Duration } from '@marcbachmann/cel-js/evaluator'

/**
 * One HTTP cookie as policy expressions see it (`req.cookies[k][i]`, `getResCookie(k)`), with
 * ngrok's field names. Request cookies only have `name` and `value`; the attributes come from
 * `Set-Cookie`. `expires` and `max_age` are absent unless the cookie set them (`has()` tells).
 */
export class Cookie {
  name = ''
  value = ''
  path = ''
  domain = ''
  expires?: Date
  max_age?: Duration
  secure = false
  http_only = false
  same_site = ''
  unparsed_attributes: Record<string, string> = {}

  constructor(fields: Partial<Cookie> = {}) {
    Object.assign(this, fields)
  }
}

/** An empty cookie: what `getReqCookie`/`getResCookie` return for a name that is not there. */
export const NO_COOKIE: Cookie = Object.freeze(new Cookie()) as Cookie

function decode(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/** Parses `Cookie` header values into name → cookies, in header order (ngrok's `req.cookies`). */
export function parseCookieHeader(values: readonly string[]): Record<string, Cookie[]> {
  const out: Record<string, Cookie[]> = {}
  for (const header of values)
    for (const part of header.split(';')) {
      const eq = part.indexOf('=')
      const name = (eq === -1 ? part : part.slice(0, eq)).trim()
      if (name === '') continue
      let value = eq === -1 ? '' : part.slice(eq + 1).trim()
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1)
      ;(out[name] ??= []).push(new Cookie({ name, value }))
    }
  return out
}

/** Parses one `Set-Cookie` value; undefined when it has no name. */
export function parseSetCookie(text: string): Cookie | undefined {
  const [pair = '', ...attrs] = text.split(';')
  const eq = pair.indexOf('=')
  if (eq <= 0) return undefined
  const cookie = new Cookie({ name: pair.slice(0, eq).trim(), value: decode(pair.slice(eq + 1).trim()).replace(/^"(.*)"$/, '$1') })
  if (cookie.name === '') return undefined
  for (const attr of attrs) {
    const i = attr.indexOf('=')
    const key = (i === -1 ? attr : attr.slice(0, i)).trim()
    const value = i === -1 ? '' : attr.slice(i + 1).trim()
    switch (key.toLowerCase()) {
      case 'path':
        cookie.path = value
        break
      case 'domain':
        cookie.domain = value.replace(/^\./, '')
        break
      case 'expires': {
        const when = new Date(value)
        if (!Number.isNaN(when.getTime())) cookie.expires = when
        break
      }
      case 'max-age':
        if (/^-?\d+$/.test(value)) cookie.max_age = new Duration(BigInt(value))
        break
      case 'secure':
        cookie.secure = true
        break
      case 'httponly':
        cookie.http_only = true
        break
      case 'samesite':
        cookie.same_site = value
        break
      default:
        if (key !== '') cookie.unparsed_attributes[key] = value
    }
  }
  return cookie
}

/**
 * Parses `Set-Cookie` values into name → cookies; several cookies of one name are ordered by
 * path length, longest first (ngrok's `res.cookies`).
 */
export function parseSetCookies(values: readonly string[]): Record<string, Cookie[]> {
  const out: Record<string, Cookie[]> = {}
  for (const text of values) {
    const cookie = parseSetCookie(text)
    if (cookie) (out[cookie.name] ??= []).push(cookie)
  }
  for (const list of Object.values(out)) list.sort((a, b) => b.path.length - a.path.length)
  return out
}
