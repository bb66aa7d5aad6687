import * as v from 'valibot'
import { parseDuration } from '../../lib/duration.ts'
import { CODES, WarrenError } from '../../lib/errors.ts'
import { errorResponse } from '../../proxy/errors.ts'
import { celContext } from '../context.ts'
import { CONTINUE, defineAction, type HttpExchange, type Outcome, type WindowHit } from '../types.ts'

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
    return { limited, retryAfterSec: limited ? retryAfterSec(this.#capacity, this.#windowMs, b.previous, b.current, elapsed) : 0 }
  }

  #sweep(window: number): void {
    this.#swept = window
    for (const [key, b] of this.#buckets) if (b.window < window - 1) this.#buckets.delete(key)
  }
}

/**
 * Seconds until `previous·(1−t) + current + 1 ≤ capacity` for a bucket `elapsed` (0–1) into its
 * window, looking into the next window if needed (at least 1). The Redis window (scope: cluster)
 * answers with its counts and is read the same way.
 */
export function retryAfterSec(capacity: number, windowMs: number, previous: number, current: number, elapsed: number): number {
  let wait: number
  if (current + 1 <= capacity && previous > 0) {
    const t = 1 - (capacity - 1 - current) / previous
    wait = Math.max(0, t - elapsed)
  } else {
    // Not before the next window; there this window's count is the one that decays.
    const t = current > 0 ? Math.max(0, 1 - (capacity - 1) / current) : 0
    wait = 1 - elapsed + t
  }
  return Math.max(1, Math.ceil((wait * windowMs) / 1000))
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
 * `scope: endpoint` counts in this edge process (a reload that changes the action starts afresh);
 * `scope: cluster` counts in the cluster's Redis, with this process's counter standing in while
 * Redis cannot answer (src/cluster/shared-limits.ts).
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
    /**
     * warren's own: `endpoint` (default) counts in this edge process; `cluster` counts across every
     * node sharing `cluster.redis` (without it, in this process as `endpoint` does).
     */
    scope: v.optional(v.picklist(['endpoint', 'cluster']), 'endpoint'),
  }),
  build(config, env) {
    const keys = config.bucket_key.map((expr, i) => env.expression(expr, ['config', 'bucket_key', i]))
    const windowMs = parseDuration(config.rate)!
    const windows = new SlidingWindow(config.capacity, windowMs)
    const enforce = config.enforce
    const cluster = config.scope === 'cluster' ? env.clusterScope : undefined
    if (cluster && 'refused' in cluster) throw new WarrenError(CODES.CLUSTER_SCOPE_UNAVAILABLE, `scope: cluster ${cluster.refused}`)
    const shared = cluster?.shared
    // The same on every node given the same policies: the endpoint's id (a cloud endpoint's from its
    // file, an agent endpoint's from its tunnel id) and where the action sits in the policy.
    const place = `${env.path.join('.')}:${windowMs}`
    const hitOptions = { capacity: config.capacity, windowMs, countRefused: !enforce }

    function decide(ex: HttpExchange, bucket: string, error: { code: string; message: string }, hit: WindowHit): Outcome {
      ex.actions['rate_limit'] = { bucket_key: bucket, limited: hit.limited, error }
      if (!hit.limited || !enforce) return CONTINUE
      const response = errorResponse(429, CODES.RATE_LIMITED, 'Too many requests; retry later.', ex.headers.get('accept'))
      response.headers.set('retry-after', String(hit.retryAfterSec))
      return { kind: 'respond', response }
    }

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
      const local = JSON.stringify(parts)
      if (!shared) return decide(ex, bucket, error, windows.hit(local, Date.now(), !enforce))
      return shared
        .hit(`${ex.endpoint.id}:${place}:${local}`, hitOptions)
        .then((hit) => decide(ex, bucket, error, hit ?? windows.hit(local, Date.now(), !enforce)))
    }
  },
})
