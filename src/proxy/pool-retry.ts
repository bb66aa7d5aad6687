import { IDEMPOTENT_METHODS, UpstreamRefused } from './h1/index.ts'

/**
 * When a request to a pooled agent endpoint fails before a byte of the answer came back, warren may
 * send it once more, to another online member of the same pool. ngrok does not define this; the rule
 * here keeps a retry from ever doing something twice that the client asked for once:
 *
 * 1. Only before any response byte: once the agent answered anything, that answer is the client's.
 * 2. Only a replayable body: none, or a Content-Length of at most `MAX_REPLAY_BODY`, read whole before
 *    the first attempt. Larger, unsized (chunked) or streaming bodies are never retried.
 * 3. Any method when the failure proves the request never reached the upstream: no proxy stream could
 *    be opened (the session is gone), the member's session was already closed, no request byte was
 *    written before the stream died, or the agent refused the stream (muxado StreamRefused, which like
 *    HTTP/2's REFUSED_STREAM means it was not read).
 * 4. Otherwise (the request was written, then the stream or session died without a response) only
 *    idempotent methods: GET, HEAD, OPTIONS, PUT, DELETE, TRACE (RFC 9110 §9.2.2).
 * 5. At most `POOL_RETRIES` retry per request, each on a member not tried yet whose session is up.
 */

/**
 * Request bodies up to this size (by Content-Length) are held in memory on pooled endpoints so the
 * request can be sent again. 64 KiB covers form posts and JSON APIs while bounding what one request
 * may pin; a body over it streams as usual and is not retried.
 */
export const MAX_REPLAY_BODY = 64 * 1024

/** Retries per request after the first attempt. */
export const POOL_RETRIES = 1

/** Why an attempt on a member failed (a log field and a metric label). */
export type RetryReason = 'session closed' | 'no stream' | 'stream refused' | 'stream reset' | 'stream closed'

/** How far a failed attempt got. */
export interface AttemptFailure {
  /** The failure proves the request never reached the upstream. */
  unsent: boolean
  reason: RetryReason
}

/**
 * Reads a forwarding error: an `AttemptFailure` when the agent failed before answering, undefined for
 * anything else (a timeout, an invalid or partial answer, the client's own body failing).
 */
export function attemptFailure(err: unknown): AttemptFailure | undefined {
  if (!(err instanceof UpstreamRefused)) return undefined
  if (err.closeReason === 'refused') return { unsent: true, reason: 'stream refused' }
  const reason: RetryReason =
    err.closeReason === 'session closed' ? 'session closed' : err.closeReason === 'reset' ? 'stream reset' : err.requestSent ? 'stream closed' : 'no stream'
  return { unsent: !err.requestSent, reason }
}

/** Rules 3 and 4: whether `method` may be sent again after `failure`. */
export function mayRetry(method: string, failure: AttemptFailure): boolean {
  return failure.unsent || IDEMPOTENT_METHODS.has(method.toUpperCase())
}

/** A request body that can be sent more than once: `null` when there is none. */
export type ReplayBody = { bytes: Uint8Array | null }

/**
 * Rule 2: reads the body whole when it may be replayed (none, or Content-Length ≤ `MAX_REPLAY_BODY`);
 * undefined when it must stream (then the request is never retried). Rejects when the client's body
 * fails while it is read.
 */
export async function readReplayBody(req: Request): Promise<ReplayBody | undefined> {
  if (req.body === null) return { bytes: null }
  const declared = req.headers.get('content-length')
  if (declared === null || !/^\d{1,15}$/.test(declared.trim())) return undefined
  const length = Number(declared)
  if (length > MAX_REPLAY_BODY) return undefined
  if (length === 0) return { bytes: null }
  return { bytes: new Uint8Array(await req.arrayBuffer()) }
}

/** A fresh stream over a replayable body for one attempt. */
export function replayStream(body: ReplayBody): ReadableStream<Uint8Array> | null {
  const bytes = body.bytes
  if (bytes === null) return null
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes)
      controller.close()
    },
  })
}

/** Retries per endpoint URL and reason, read by the metrics at scrape time. */
export class PoolRetryStats {
  readonly #counts = new Map<string, { endpoint: string; reason: RetryReason; count: number }>()

  count(endpoint: string, reason: RetryReason): void {
    const key = `${endpoint}\0${reason}`
    const entry = this.#counts.get(key)
    if (entry) entry.count++
    else this.#counts.set(key, { endpoint, reason, count: 1 })
  }

  entries(): readonly { endpoint: string; reason: RetryReason; count: number }[] {
    return [...this.#counts.values()].map((e) => ({ ...e }))
  }
}
