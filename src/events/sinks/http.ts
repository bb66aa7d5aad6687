import type { Logger } from '../../lib/log.ts'
import type { WarrenEvent } from '../types.ts'

export interface HttpSinkOptions {
  url: string
  headers: Record<string, string>
  batchSize: number
  flushIntervalMs: number
  maxRetries: number
  timeoutMs: number
  /** Most events waiting (retries included); beyond it new events are dropped and counted. */
  buffer: number
  log: Logger
  /** Backoff before retry `n` (1-based), in ms. */
  backoffMs?: (attempt: number) => number
  fetch?: typeof fetch
}

function defaultBackoff(attempt: number): number {
  return Math.min(30_000, 250 * 2 ** (attempt - 1)) * (0.75 + Math.random() / 2)
}

/**
 * POSTs events as a JSON array, `batchSize` at a time or every `flushIntervalMs`, one request at a
 * time. A network error, 408, 429 or 5xx is retried with exponential backoff; other answers and
 * exhausted retries drop the batch (counted).
 */
export class HttpSink {
  readonly #o: HttpSinkOptions
  #queue: WarrenEvent[] = []
  #timer: ReturnType<typeof setTimeout> | undefined
  #sending: Promise<void> | undefined
  #closed = false
  #dropped = 0
  #sent = 0

  constructor(options: HttpSinkOptions) {
    this.#o = options
  }

  get dropped(): number {
    return this.#dropped
  }

  get sent(): number {
    return this.#sent
  }

  accept(batch: readonly WarrenEvent[]): void {
    if (this.#closed) return
    for (const event of batch) {
      if (this.#queue.length >= this.#o.buffer) this.#dropped++
      else this.#queue.push(event)
    }
    if (this.#queue.length >= this.#o.batchSize) this.#kick()
    else if (this.#queue.length && !this.#timer && !this.#sending) {
      this.#timer = setTimeout(() => this.#kick(), this.#o.flushIntervalMs)
      this.#timer.unref?.()
    }
  }

  /** Sends what is queued now (one attempt each, no backoff) and waits for it; used at shutdown. */
  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#timer)
    while (this.#sending) await this.#sending
    while (this.#queue.length) {
      const batch = this.#queue.splice(0, this.#o.batchSize)
      if (!(await this.#post(batch)).ok) this.#dropped += batch.length
      else this.#sent += batch.length
    }
  }

  /** Resolves when nothing is queued or in flight. */
  async idle(): Promise<void> {
    while (this.#sending || this.#queue.length) {
      if (!this.#sending) this.#kick()
      await this.#sending
    }
  }

  #kick(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#sending ??= this.#run().finally(() => {
      this.#sending = undefined
      if (this.#queue.length && !this.#closed) this.accept([])
    })
  }

  async #run(): Promise<void> {
    while (this.#queue.length) {
      const batch = this.#queue.splice(0, this.#o.batchSize)
      let attempt = 0
      for (;;) {
        const result = await this.#post(batch)
        if (result.ok) {
          this.#sent += batch.length
          break
        }
        if (!result.retry || attempt >= this.#o.maxRetries || this.#closed) {
          this.#dropped += batch.length
          this.#o.log.warn('event batch dropped', { url: this.#o.url, events: batch.length, attempts: attempt + 1, error: result.error })
          break
        }
        attempt++
        await Bun.sleep((this.#o.backoffMs ?? defaultBackoff)(attempt))
      }
    }
  }

  async #post(batch: readonly WarrenEvent[]): Promise<{ ok: true } | { ok: false; retry: boolean; error: string }> {
    try {
      const res = await (this.#o.fetch ?? fetch)(this.#o.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'warren-events', ...this.#o.headers },
        body: JSON.stringify(batch),
        signal: AbortSignal.timeout(this.#o.timeoutMs),
      })
      await res.body?.cancel().catch(() => {})
      if (res.ok) return { ok: true }
      return { ok: false, retry: res.status === 408 || res.status === 429 || res.status >= 500, error: `HTTP ${res.status}` }
    } catch (err) {
      return { ok: false, retry: true, error: (err as Error).message }
    }
  }
}
