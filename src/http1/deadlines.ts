/**
 * One coarse clock for the HTTP/1.1 engine's timeouts instead of a timer per request: a watched
 * connection keeps its deadlines as plain numbers (`performance.now()` milliseconds, 0 for none) and
 * one interval, running only while something is watched, asks each to check them. Arming or clearing
 * a deadline is then a field write; a `setTimeout` + `clearTimeout` per exchange was ~2 % of the
 * relay's samples (docs/benchmarks.md, profile notes). A deadline fires up to TICK_MS late; the
 * timeouts it serves are configured in whole seconds.
 */

export const TICK_MS = 100

/** Something with deadlines: `sweep` fires the ones `now` has passed. */
export interface Watched {
  sweep(now: number): void
}

const watched = new Set<Watched>()
let timer: ReturnType<typeof setInterval> | undefined

function sweepAll(): void {
  const now = performance.now()
  for (const item of watched) {
    try {
      item.sweep(now)
    } catch (err) {
      // One failing connection must not stop the others' clocks; the error still surfaces as uncaught.
      queueMicrotask(() => {
        throw err
      })
    }
  }
}

/** Checks `item`'s deadlines every tick until `unwatch`. */
export function watch(item: Watched): void {
  watched.add(item)
  if (timer) return
  timer = setInterval(sweepAll, TICK_MS)
  // The listeners keep the process alive, not this clock.
  timer.unref()
}

export function unwatch(item: Watched): void {
  watched.delete(item)
  if (watched.size || !timer) return
  clearInterval(timer)
  timer = undefined
}
