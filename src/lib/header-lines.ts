/**
 * Repeated header lines beside a `Headers` object. `Headers` joins lines with the same name into one
 * (`a, b`), which is the same value for a recipient but not the same message: the HTTP/1 engine
 * records the lines a client repeated, `add-headers` records the line it adds to an existing name,
 * and the upstream HTTP/1.1 client (requests) and the engine (responses to clients) write them back
 * as separate lines while the joined value is still theirs (a policy that replaced the value gets
 * exactly what it set).
 */

const LINES = new WeakMap<Headers, Map<string, string[]>>()

/** Records that `name` (lower-case) arrived as these separate lines. */
export function recordLines(headers: Headers, name: string, values: readonly string[]): void {
  let byName = LINES.get(headers)
  if (!byName) LINES.set(headers, (byName = new Map()))
  byName.set(name, [...values])
}

/** A header list that keeps repeated lines apart itself (the byte relay's, proxy/line-headers.ts). */
export interface KeepsLines {
  appendLine(name: string, value: string): void
}

/**
 * `headers.append`, remembered as a line of its own. `name` is a lower-case token and `value` a
 * cleaned header value (add-headers checks both), which a list that keeps lines takes as they are.
 */
export function appendLine(headers: Headers, name: string, value: string): void {
  if ('appendLine' in headers) return (headers as Headers & KeepsLines).appendLine(name, value)
  const prior = headers.get(name)
  if (prior === null) return headers.append(name, value)
  const lines = linesOf(headers, name, prior) ?? [prior]
  headers.append(name, value)
  recordLines(headers, name, [...lines, value])
}

/** A copy of `headers` that keeps the recorded lines. */
export function copyHeaders(headers: Headers): Headers {
  const copy = new Headers(headers)
  const byName = LINES.get(headers)
  if (byName) LINES.set(copy, new Map(byName))
  return copy
}

/** Gives `to` (a copy of `from`, such as a Response's own headers) the lines recorded for `from`. */
export function carryLines(from: Headers, to: Headers): void {
  const byName = LINES.get(from)
  if (byName) LINES.set(to, new Map(byName))
}

/** The separate lines behind `value` of `name`, when `value` is still exactly their join. */
export function linesOf(headers: Headers, name: string, value: string): readonly string[] | undefined {
  const lines = LINES.get(headers)?.get(name)
  return lines && lines.join(', ') === value ? lines : undefined
}
