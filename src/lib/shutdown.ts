import { CODES } from './errors.ts'
import type { Logger } from './log.ts'

/** One part of the edge (a listener, the agent port) as a graceful shutdown sees it. */
export interface Drainable {
  /** Stops taking new work: its listening sockets close; what is in flight goes on. */
  stopAccepting(): void
  /** Requests and connections still in flight. */
  inFlight(): number
  /** Ends whatever is left, at once. */
  cut(): void
}

export interface ShutdownOptions {
  /** How long work in flight may take to finish (ms). */
  drainMs: number
  log: Logger
  /** Settles when the drain must end now (a second SIGTERM). */
  hurry?: Promise<unknown>
  /** How often in-flight counts are read (ms). */
  pollMs?: number
}

/**
 * A graceful shutdown: every part stops accepting, work in flight gets up to `drainMs` to finish,
 * then every part is cut, in the order given (public listeners before the agent port, so requests
 * cut at the deadline end before their agents are told to go). Always settles within `drainMs`
 * plus one poll, whatever the parts do.
 *
 * @example
 * await shutdown({ http, tls, agents }, { drainMs: 10_000, log })
 */
export async function shutdown(parts: Readonly<Record<string, Drainable>>, options: ShutdownOptions): Promise<{ drained: boolean; ms: number }> {
  const started = Date.now()
  const deadline = started + options.drainMs
  const entries = Object.entries(parts)
  // One part that throws must not keep the others open, nor the process alive.
  const each = (step: 'stopAccepting' | 'cut') => {
    for (const [name, part] of entries)
      try {
        part[step]()
      } catch (err) {
        options.log.error(`shutdown: ${step} failed`, { part: name, error: err instanceof Error ? err.message : String(err) })
      }
  }
  each('stopAccepting')
  let hurried = false
  let wake = () => {}
  void options.hurry?.then(() => {
    hurried = true
    wake()
  })
  const left = () => Object.fromEntries(entries.map(([name, part]) => [name, part.inFlight()]).filter(([, n]) => (n as number) > 0)) as Record<string, number>
  let open = left()
  while (Object.keys(open).length > 0 && Date.now() < deadline && !hurried) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.min(options.pollMs ?? 25, Math.max(0, deadline - Date.now())))
      wake = () => (clearTimeout(timer), resolve())
    })
    open = left()
  }
  const drained = Object.keys(open).length === 0
  if (!drained)
    options.log.warn(hurried ? 'shutdown hurried: cutting what is still in flight' : 'shutdown drain deadline passed: cutting what is still in flight', {
      code: CODES.SHUTDOWN_DRAIN_CUT,
      in_flight: open,
      drain_ms: options.drainMs,
    })
  each('cut')
  return { drained, ms: Date.now() - started }
}
