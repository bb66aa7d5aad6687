/**
 * When to renew and when to retry. Pure functions of dates and a random number, so the manager's
 * timing is tested without clocks.
 */

/** Renewal starts this far into a certificate's lifetime (Let's Encrypt's advice: at two thirds). */
export const RENEW_AT_FRACTION = 2 / 3
/** Renewals are spread over up to this fraction of the lifetime before the two-thirds point. */
const JITTER_FRACTION = 0.05
/** ...but never more than this, so a 90-day certificate renews within hours of day 60. */
const MAX_JITTER_MS = 6 * 60 * 60 * 1000

/**
 * The moment to renew a certificate valid from `notBefore` to `notAfter`: two thirds of the way
 * through, moved earlier by a random jitter (at most 5% of the lifetime or 6 h) so that edges that
 * got many certificates at once do not renew them all at once.
 *
 * @example
 * renewAt(new Date('2025-01-01'), new Date('2025-04-01'), 0) // 2025-03-02, day 60 of 90
 */
export function renewAt(notBefore: Date, notAfter: Date, random = Math.random()): Date {
  const start = notBefore.getTime()
  const lifetime = Math.max(0, notAfter.getTime() - start)
  const jitter = Math.min(lifetime * JITTER_FRACTION, MAX_JITTER_MS) * Math.min(Math.max(random, 0), 1)
  return new Date(start + lifetime * RENEW_AT_FRACTION - jitter)
}

/**
 * The wait before retry number `failures` (1 after the first failure): `min` doubled per further
 * failure, capped at `max`, with ±10% jitter so retries from many names do not line up.
 *
 * @example
 * retryDelay(3, { minMs: 60_000, maxMs: 86_400_000 }, 0.5) // 240_000 (1 min → 2 → 4)
 */
export function retryDelay(failures: number, options: { minMs: number; maxMs: number }, random = Math.random()): number {
  const exponent = Math.max(0, failures - 1)
  const base = Math.min(options.maxMs, options.minMs * 2 ** Math.min(exponent, 40))
  const jitter = 1 + (Math.min(Math.max(random, 0), 1) - 0.5) * 0.2
  return Math.max(options.minMs, Math.min(options.maxMs, Math.round(base * jitter)))
}

/** setTimeout's longest delay (2^31-1 ms, about 24.8 days); longer ones fire at once, so wake up early and look again. */
export const MAX_TIMER_MS = 2 ** 31 - 1
