import type { Environment } from '@marcbachmann/cel-js'

/**
 * cel-js computes `getDayOfYear()` with local-time dates, so it is a day off on hosts whose time zone
 * has daylight saving time. Expressions are rewritten at load to call this method instead
 * (rewrite.ts), which counts in UTC or in the named zone.
 */
export const DAY_OF_YEAR_METHOD = 'warrenDayOfYear'

const TS = 'google.protobuf.Timestamp'

/** Zero-based day of the year of `date`, in UTC or in the IANA time zone `zone`. */
export function dayOfYear(date: Date, zone?: string): bigint {
  let y = date.getUTCFullYear()
  let m = date.getUTCMonth()
  let d = date.getUTCDate()
  if (zone !== undefined) {
    let parts: Intl.DateTimeFormatPart[]
    try {
      parts = new Intl.DateTimeFormat('en-US', { timeZone: zone, year: 'numeric', month: 'numeric', day: 'numeric' }).formatToParts(date)
    } catch {
      throw new RangeError(`unknown time zone "${zone}"`)
    }
    const get = (type: string) => Number(parts.find((p) => p.type === type)?.value)
    y = get('year')
    m = get('month') - 1
    d = get('day')
  }
  return BigInt(Math.round((Date.UTC(y, m, d) - Date.UTC(y, 0, 1)) / 86_400_000))
}

/**
 * Timestamp helpers. cel-js already provides ngrok's getters (`getFullYear`, `getMonth`, `getDate`,
 * `getDayOfMonth`, `getDayOfWeek`, `getHours`, `getMinutes`, `getSeconds`, `getMilliseconds`, each
 * with an optional time zone), `timestamp(string|int)` and `duration(string)`; this adds a
 * time-zone-safe `getDayOfYear`.
 */
export function registerTime(env: Environment): void {
  env.registerFunction(`${TS}.${DAY_OF_YEAR_METHOD}(): int`, (d: Date) => dayOfYear(d))
  env.registerFunction(`${TS}.${DAY_OF_YEAR_METHOD}(string): int`, (d: Date, zone: string) => dayOfYear(d, zone))
}
