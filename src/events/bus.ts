import type { EventSink, RequestTally, WarrenEvent } from './types.ts'

/** A consumer of queued events; gets them in batches, after the emitter has moved on. */
export type Subscriber = (batch: readonly WarrenEvent[]) => void

export interface EventBusOptions {
  /** Most events waiting for delivery; beyond it new events are dropped and counted. */
  capacity?: number
  /** Reports a subscriber or tap that threw (it stays subscribed). */
  onError?: (err: unknown) => void
}

/**
 * The edge's event bus. `emit` is synchronous and O(1) for the caller: taps (cheap in-process
 * aggregation such as metrics) run inline, and the event joins a bounded queue that is delivered to
 * subscribers (sinks, SSE streams) on a later turn of the event loop. When the queue is full the
 * event is dropped and counted, so a slow sink can never hold up a request.
 *
 * @example
 * const bus = new EventBus({ capacity: 10_000 })
 * bus.subscribe((batch) => console.log(batch.length))
 * bus.emit(makeEvent('config_reload.v0', {...}))
 */
export class EventBus implements EventSink {
  readonly #capacity: number
  readonly #onError: (err: unknown) => void
  /** Taps of every event. */
  readonly #taps = new Set<(event: WarrenEvent) => void>()
  /** Taps of every event but `http_request_complete.v0` (requests reach them as tallies, if at all). */
  readonly #otherTaps = new Set<(event: WarrenEvent) => void>()
  readonly #requestTaps = new Set<(tally: RequestTally) => void>()
  readonly #subscribers = new Set<Subscriber>()
  #queue: WarrenEvent[] = []
  #scheduled = false
  #emitted = 0
  #dropped = 0

  constructor(options: EventBusOptions = {}) {
    this.#capacity = options.capacity ?? 10_000
    this.#onError = options.onError ?? (() => {})
  }

  /** Events emitted since start (delivered or not). */
  get emitted(): number {
    return this.#emitted
  }

  /** Events dropped because the queue was full. */
  get dropped(): number {
    return this.#dropped
  }

  /** Events waiting for delivery. */
  get pending(): number {
    return this.#queue.length
  }

  emit(event: WarrenEvent): void {
    this.#emitted++
    if (event.event_type === 'http_request_complete.v0') {
      if (this.#requestTaps.size) {
        const o = event.object
        const url = o.http.request.url
        this.#runRequestTaps({
          endpoint: o.endpoint?.url ?? '',
          endpointId: o.endpoint?.id ?? '',
          method: o.http.request.method,
          path: url.query ? `${url.path}?${url.query}` : url.path,
          status: o.http.response.status_code,
          durationMs: o.duration_ms,
          requestBytes: o.http.request.body_length,
          responseBytes: o.http.response.body_length,
        })
      }
    } else this.#runTaps(this.#otherTaps, event)
    this.#runTaps(this.#taps, event)
    if (this.#subscribers.size === 0) return
    if (this.#queue.length >= this.#capacity) {
      this.#dropped++
      return
    }
    this.#queue.push(event)
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(() => this.#deliver())
    }
  }

  /**
   * Counts a request without its event when nothing wants the event itself: the request taps get
   * `tally` inline. False when a subscriber or a tap of every event is there (then `emit` the event).
   */
  countRequest(tally: RequestTally): boolean {
    if (this.#subscribers.size || this.#taps.size) return false
    this.#emitted++
    this.#runRequestTaps(tally)
    return true
  }

  /**
   * Runs `tap` inline on every event. Keep it tiny (a counter): it runs on the data path. With
   * `requests: false` it skips `http_request_complete.v0`, so a request without a reader of its
   * event is never built into one (count those with `tapRequests`).
   */
  tap(tap: (event: WarrenEvent) => void, options: { requests?: boolean } = {}): () => void {
    const set = options.requests === false ? this.#otherTaps : this.#taps
    set.add(tap)
    return () => set.delete(tap)
  }

  /** Runs `tap` inline on every answered HTTP request, whether its event is built or not. */
  tapRequests(tap: (tally: RequestTally) => void): () => void {
    this.#requestTaps.add(tap)
    return () => this.#requestTaps.delete(tap)
  }

  /** Delivers queued events to `subscriber` in batches; returns the unsubscribe function. */
  subscribe(subscriber: Subscriber): () => void {
    this.#subscribers.add(subscriber)
    return () => this.#subscribers.delete(subscriber)
  }

  /** Delivers what is queued now (tests and shutdown; normally a later tick does it). */
  flush(): void {
    this.#deliver()
  }

  #runTaps(taps: ReadonlySet<(event: WarrenEvent) => void>, event: WarrenEvent): void {
    for (const tap of taps) {
      try {
        tap(event)
      } catch (err) {
        this.#onError(err)
      }
    }
  }

  #runRequestTaps(tally: RequestTally): void {
    for (const tap of this.#requestTaps) {
      try {
        tap(tally)
      } catch (err) {
        this.#onError(err)
      }
    }
  }

  #deliver(): void {
    this.#scheduled = false
    if (this.#queue.length === 0) return
    const batch = this.#queue
    this.#queue = []
    for (const subscriber of [...this.#subscribers]) {
      try {
        subscriber(batch)
      } catch (err) {
        this.#onError(err)
      }
    }
  }
}
