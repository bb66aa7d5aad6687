import * as v from 'valibot'
import { parseDuration } from '../../lib/duration.ts'
import { CODES, WarrenError } from '../../lib/errors.ts'
import { errorResponse } from '../../proxy/errors.ts'
import { CONTINUE, defineAction, type BreakerVerdict, type HttpExchange, type Outcome } from '../types.ts'

export interface BreakerOptions {
  errorThreshold: number
  volumeThreshold: number
  windowMs: number
  trippedMs: number
  buckets: number
}

type State = { kind: 'closed' } | { kind: 'open'; until: number } | { kind: 'half-open'; probeSince: number | undefined }

/**
 * A circuit breaker over a rolling window of `buckets` slices. Closed: requests pass and their
 * upstream statuses are counted; once the window holds `volumeThreshold` requests and the share of
 * 5xx reaches `errorThreshold`, it opens. Open: requests are refused for `trippedMs`. Then one probe
 * request is let through: success closes it, failure opens it again.
 */
export class CircuitBreaker {
  readonly #o: BreakerOptions
  readonly #slice: number
  readonly #counts: { index: number; total: number; errors: number }[]
  #state: State = { kind: 'closed' }

  constructor(options: BreakerOptions) {
    this.#o = options
    this.#slice = options.windowMs / options.buckets
    this.#counts = Array.from({ length: options.buckets }, () => ({ index: -1, total: 0, errors: 0 }))
  }

  get state(): State['kind'] {
    return this.#state.kind
  }

  /** Asks to send a request now. `record` must be called with the upstream status if it is allowed. */
  admit(now: number): BreakerVerdict {
    const s = this.#state
    if (s.kind === 'open') {
      if (now < s.until) return { allowed: false, retryAfterSec: Math.max(1, Math.ceil((s.until - now) / 1000)) }
      this.#state = { kind: 'half-open', probeSince: undefined }
    }
    if (this.#state.kind === 'half-open') {
      const h = this.#state
      // A probe that never reported back (a later action answered instead) does not block forever.
      if (h.probeSince !== undefined && now - h.probeSince < this.#o.trippedMs) return { allowed: false, retryAfterSec: 1 }
      h.probeSince = now
      return { allowed: true, probe: true }
    }
    return { allowed: true, probe: false }
  }

  /** Counts one upstream answer (5xx is an error) and opens or closes the circuit accordingly. */
  record(now: number, status: number, probe: boolean): void {
    const failed = status >= 500
    if (probe || this.#state.kind === 'half-open') {
      if (failed) this.#state = { kind: 'open', until: now + this.#o.trippedMs }
      else {
        this.#state = { kind: 'closed' }
        for (const c of this.#counts) c.index = -1
      }
      return
    }
    if (this.#state.kind !== 'closed') return
    const index = Math.floor(now / this.#slice)
    const slot = this.#counts[index % this.#counts.length]!
    if (slot.index !== index) Object.assign(slot, { index, total: 0, errors: 0 })
    slot.total++
    if (failed) slot.errors++
    let total = 0
    let errors = 0
    for (const c of this.#counts) {
      if (c.index <= index - this.#counts.length) continue
      total += c.total
      errors += c.errors
    }
    if (total >= this.#o.volumeThreshold && errors / total >= this.#o.errorThreshold) this.#state = { kind: 'open', until: now + this.#o.trippedMs }
  }
}

function duration(label: string) {
  return v.optional(
    v.pipe(
      v.string(),
      v.check((t) => {
        const ms = parseDuration(t)
        return ms !== undefined && ms >= 1000 && ms <= 120_000
      }, `${label} must be a duration between 1s and 2m, such as "10s"`),
    ),
    '10s',
  )
}

/**
 * Refuses requests with 503 while the upstream keeps failing: when, within `window_duration`, at least
 * `volume_threshold` requests were forwarded and the share answered with 5xx (or not at all) reaches
 * `error_threshold`, requests are refused for `tripped_duration`, then one probe decides.
 * `scope: cluster` keeps the breaker in the cluster's Redis (every node opens and closes it together),
 * with this process's breaker standing in while Redis cannot answer (src/cluster/shared-limits.ts).
 */
export const circuitBreaker = defineAction({
  type: 'circuit-breaker',
  phases: ['on_http_request'],
  terminating: false,
  config: v.strictObject({
    /** Share of failed requests (0.0-1.0) that trips the breaker. Default 0.5. */
    error_threshold: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(1)), 0.5),
    /** Requests the window must hold before the error share counts (1 to 2,000,000,000). Default 10. */
    volume_threshold: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(2_000_000_000)), 10),
    /** Length of the rolling window, 1s to 2m. Default "10s". */
    window_duration: duration('window_duration'),
    /** How long requests are refused once tripped, 1s to 2m. Default "10s". */
    tripped_duration: duration('tripped_duration'),
    /** Slices of the rolling window. ngrok fixes it at 10; warren accepts 1-100. */
    num_buckets: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(100)), 10),
    /** false: the breaker never trips. Default true. */
    enforce: v.optional(v.boolean(), true),
    /**
     * warren's own: `endpoint` (default) keeps the breaker in this edge process; `cluster` shares it
     * between every node of `cluster.redis` (without it, in this process as `endpoint` does).
     */
    scope: v.optional(v.picklist(['endpoint', 'cluster']), 'endpoint'),
  }),
  build(config, env) {
    const cluster = config.scope === 'cluster' ? env.clusterScope : undefined
    if (cluster && 'refused' in cluster) throw new WarrenError(CODES.CLUSTER_SCOPE_UNAVAILABLE, `scope: cluster ${cluster.refused}`)
    if (!config.enforce) return () => CONTINUE
    const options: BreakerOptions = {
      errorThreshold: config.error_threshold,
      volumeThreshold: config.volume_threshold,
      windowMs: parseDuration(config.window_duration)!,
      trippedMs: parseDuration(config.tripped_duration)!,
      buckets: config.num_buckets,
    }
    const breaker = new CircuitBreaker(options)
    const shared = cluster?.shared
    // As rate-limit's buckets: the same on every node given the same policies.
    const place = `${env.path.join('.')}:${options.windowMs}:${options.trippedMs}:${options.buckets}`

    function decide(ex: HttpExchange, verdict: BreakerVerdict, record: (status: number, probe: boolean) => void): Outcome {
      if (!verdict.allowed) {
        const response = errorResponse(503, CODES.CIRCUIT_OPEN, 'The upstream is failing; requests are paused for a moment.', ex.headers.get('accept'))
        response.headers.set('retry-after', String(verdict.retryAfterSec))
        return { kind: 'respond', response }
      }
      ;(ex.upstreamObservers ??= []).push((status) => record(status, verdict.probe))
      return CONTINUE
    }
    const recordHere = (status: number, probe: boolean) => breaker.record(Date.now(), status, probe)

    return function circuitBreaker(ex) {
      if (!shared) return decide(ex, breaker.admit(Date.now()), recordHere)
      const key = `${ex.endpoint.id}:${place}`
      return shared.admit(key, options).then((verdict) =>
        verdict ? decide(ex, verdict, (status, probe) => shared.record(key, options, { status, probe })) : decide(ex, breaker.admit(Date.now()), recordHere),
      )
    }
  },
})
