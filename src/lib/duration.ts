const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/**
 * Parses a Go-style duration (`"90s"`, `"10m"`, `"1h30m"`, `"500ms"`), the form ngrok's policy
 * fields use, into milliseconds. Returns undefined for anything else, including negative values.
 *
 * @example parseDuration('1m30s') // 90000
 */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim()
  if (trimmed === '' || trimmed === '0') return trimmed === '0' ? 0 : undefined
  let ms = 0
  let rest = trimmed
  while (rest !== '') {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest)
    if (!m) return undefined
    ms += Number(m[1]) * UNITS[m[2]!]!
    rest = rest.slice(m[0].length)
  }
  return ms
}
