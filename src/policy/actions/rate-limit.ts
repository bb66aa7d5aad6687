import * as v from 'valibot'
import { parseDuration } from '../../lib/duration.ts'
import { CODES } from '../../lib/errors.ts'
import { errorResponse } from '../../proxy/errors.ts'
import { celContext } from '../context.ts'
import { CONTINUE, defineAction } from '../types.ts'

interface Bucket {
  window: number
  previous: number
  current: number
}

/**
 * Sliding-window counters per bucket key: the count is this window's requests plus the previous
 * window's, weighted by how much of it still overlaps the sliding window. O(1) memory per key;
 * keys idle for two windows are dropped when a new window starts.
 */
export class SlidingWindow {
  readonly #capacity: number
  readonly #windowMs: number
  readonly #buckets = new Map<string, Bucket>()
  #swept = 0

  constructor(capacity: number, windowMs: number) {
    this.#capacity = capacity
    this.#windowMs = windowMs
  }

  get size(): number {
    return this.#buckets.size
  }

  /**
   * Counts one request for `key` unless it is over capacity (`countRefused` counts it anyway, for
   * dry runs). Returns whether it was over and, if so, the seconds until one more would pass.
   */
  hit(key: string, now: number, countRefused = false): { limited: boolean; retryAfterSec: number } {
    const window = Math.floor(now / this.#windowMs)
    if (window > this.#swept) this.#sweep(window)
    let b = this.#buckets.get(key)
    if (!b) this.#buckets.set(key, (b = { window, previous: 0, current: 0 }))
    else if (b.window !== window) {
      b.previous = b.window === window - 1 ? b.current : 0
      b.current = 0
      b.window = window
    }
    const elapsed = (now - window * this.#windowMs) / this.#windowMs
    const used = b.previous * (1 - elapsed) + b.current
    const limited = used + 1 > this.#capacity
    if (!limited || countRefused) b.current++
    return { limited, retryAfterSec: limited ? this.#retryAfter(b, elapsed) : 0 }
  }

  /** Seconds until `previous·(1−t) + current + 1 ≤ capacity`, looking into the next window if needed. */
  #retryAfter(b: Bucket, elapsed: number): number {
    const cap = this.#capacity
    let wait: number
    if (b.current + 1 <= cap && b.previous > 0) {
      const t = 1 - (cap - 1 - b.current) / b.previous
      wait = Math.max(0, t - elapsed)
    } else {
      // Not before the next window; there this window's count is the one that decays.
      const t = b.current > 0 ? Math.max(0, 1 - (cap - 1) / b.current) : 0
      wait = 1 - elapsed + t
    }
    return Math.max(1, Math.ceil((wait * this.#windowMs) / 1000))
  }

  #sweep(window: number): void {
    this.#swept = window
    for (const [key, b] of this.#buckets) if (b.window < window - 1) this.#buckets.delete(key)
  }
}

function keyText(value: unknown): string {
  if (typeof value === 'string') return value
  if (value === undefined || value === null) return ''
  return JSON.stringify(value, (_k, x) => (typeof x === 'bigint' ? x.toString() : x))
}

const DURATION = v.pipe(
  v.string(),
  v.check((t) => {
    const ms = parseDuration(t)
    return ms !== undefined && ms >= 1000 && ms <= 86_400_000
  }, 'must be a duration between 1s and 24h, such as "60s" or "10m"'),
)

/**
 * Limits how many requests per `rate` reach the upstream, per bucket (`bucket_key`: CEL expressions
 * such as `conn.client_ip`). Over capacity: 429 with `Retry-After`, unless `enforce` is false.
 * Counters live in this edge process; a reload that changes the action starts them afresh.
 */
export const rateLimit = defineAction({
  type: 'rate-limit',
  phases: ['on_http_request'],
  terminating: false,
  config: v.strictObject({
    /** Label for this limit (shown in logs). */
    name: v.optional(v.pipe(v.string(), v.maxLength(1023))),
    /** false: never refuse, only set the result variables. Default true. */
    enforce: v.optional(v.boolean(), true),
    /** Only `sliding_window` exists; optional in warren. */
    algorithm: v.optional(v.picklist(['sliding_window']), 'sliding_window'),
    /** Requests allowed per `rate` window, per bucket (1 to 2,000,000,000). */
    capacity: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(2_000_000_000)),
    /** Window length as a duration (`"60s"`, `"10m"`), 1s to 24h. */
    rate: DURATION,
    /** CEL expressions whose values together name the bucket (`conn.client_ip`, `req.host`). 1 to 10. */
    bucket_key: v.pipe(v.array(v.string()), v.minLength(1, 'needs at least one bucket key'), v.maxLength(10)),
  }),
  build(config, env) {
    const keys = config.bucket_key.map((expr, i) => env.expression(expr, ['config', 'bucket_key', i]))
    const windows = new SlidingWindow(config.capacity, parseDuration(config.rate)!)
    const enforce = config.enforce
    return function rateLimit(ex) {
      const context = celContext(ex)
      let error = { code: '', message: '' }
      const parts = keys.map((key) => {
        try {
          return keyText(key(context))
        } catch (err) {
          error = { code: 'bucket_key_failed', message: err instanceof Error ? err.message : String(err) }
          return ''
        }
      })
      const bucket = parts.join(',')
      const { limited, retryAfterSec } = windows.hit(JSON.stringify(parts), Date.now(), !enforce)
      ex.actions['rate_limit'] = { bucket_key: bucket, limited, error }
      if (!limited || !enforce) return CONTINUE
      const response = errorResponse(429, CODES.RATE_LIMITED, 'Too many requests; retry later.', ex.headers.get('accept'))
      response.headers.set('retry-after', String(retryAfterSec))
      return { kind: 'respond', response }
    }
  },
})
