import { Optional } from '@marcbachmann/cel-js'
import { Duration, UnsignedInt } from '@marcbachmann/cel-js/evaluator'

/**
 * The hidden field that holds the text of ngrok's "string with fields" variables (`req.url`,
 * `req.content_type`, `req.user_agent`, `res.content_type`): `req.url == '…'` is rewritten at load
 * to read it, `req.url.path` reads the sub-field (see rewrite.ts).
 */
export const TEXT_FIELD = '__text'

/**
 * RFC 3339 in UTC with milliseconds (ngrok's `time.now` is RFC 3339 text): keeping the fraction
 * lets `timestamp(time.now)` compare correctly with `conn.ts.start` within the same second.
 */
export function rfc3339(date: Date): string {
  return date.toISOString()
}

/** The last timestamp rendered: `${conn.ts.start}` of the requests that arrive within one millisecond. */
let lastTimestamp = { ms: NaN, text: '' }

/** RFC 3339 with milliseconds when there are any (timestamps rendered into text). */
function timestampText(date: Date): string {
  const ms = date.getTime()
  if (ms === lastTimestamp.ms) return lastTimestamp.text
  // toISOString is ~0.2 µs: a set-vars of `${conn.ts.start}` pays it once per millisecond, not per request.
  const text = date.toISOString().replace(/\.000Z$/, 'Z')
  lastTimestamp = { ms, text }
  return text
}

/** Largest and smallest ints whose text Number gives exactly. */
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER)
const SAFE_MIN = -SAFE_MAX

/** The decimal text of a CEL int: through Number where that is exact (String of a bigint is ~4x slower). */
export function intText(value: bigint): string {
  return value <= SAFE_MAX && value >= SAFE_MIN ? String(Number(value)) : String(value)
}

function isComposite(value: object): boolean {
  return value instanceof Map ? value.get(TEXT_FIELD) !== undefined : TEXT_FIELD in value
}

/**
 * Turns a CEL runtime value into plain JSON data: ints become numbers, timestamps RFC 3339 text,
 * durations Go-style text (`"90s"`), bytes base64 (as Go's encoding/json does), typed messages and
 * Maps objects, and a "string with fields" its text.
 */
export function toPlain(value: unknown): unknown {
  switch (typeof value) {
    case 'bigint':
      return Number(value)
    case 'string':
    case 'number':
    case 'boolean':
      return value
    case 'undefined':
      return null
    case 'object':
      break
    default:
      return String(value)
  }
  if (value === null) return null
  if (value instanceof UnsignedInt) return Number(value.value)
  if (value instanceof Date) return timestampText(value)
  if (value instanceof Duration) return value.toString()
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64')
  if (value instanceof Optional) return value.hasValue() ? toPlain(value.value()) : null
  if (Array.isArray(value) || value instanceof Set) return [...value].map(toPlain)
  if (isComposite(value)) return toPlain(value instanceof Map ? value.get(TEXT_FIELD) : (value as Record<string, unknown>)[TEXT_FIELD])
  // Typed variable values (context.ts) list their fields themselves.
  const toJSON = (value as { toJSON?: unknown }).toJSON
  if (typeof toJSON === 'function') return toPlain(toJSON.call(value))
  const out: Record<string, unknown> = {}
  const entries = value instanceof Map ? [...value.entries()] : Object.entries(value)
  for (const [k, v] of entries) if (v !== undefined) out[String(k)] = toPlain(v)
  return out
}

/** Text of a value for `${…}` interpolation: strings as they are, everything else as JSON. */
export function toText(value: unknown): string {
  if (typeof value === 'string') return value
  if (value === null || value === undefined) return ''
  if (typeof value === 'bigint') return intText(value)
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (value instanceof Date) return timestampText(value)
  if (value instanceof Duration || value instanceof UnsignedInt) return value.toString()
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8')
  const plain = toPlain(value)
  return typeof plain === 'string' ? plain : JSON.stringify(plain)
}

/** JSON text → CEL values: objects become maps, arrays lists, numbers doubles (as ngrok's Go does). */
export function fromJson(text: string): unknown {
  return JSON.parse(text) as unknown
}
