import type { Level, Logger } from './log.ts'

/** A log call that writes at most one line per code (or message, without one) per interval. */
export type ThrottledLog = (level: Level, msg: string, fields: Record<string, unknown>) => void

/**
 * For events a peer can repeat at will (connections refused or cut for a limit): one line per event
 * would let a flood fill the disk. Writes the first line of each `code` field (the message when
 * there is none), then at most one per `intervalMs`; that line says how many were left out since the previous one (`suppressed`).
 *
 * @example
 * const limitLog = throttledLog(logger)
 * limitLog('warn', 'too many unauthenticated connections; refused', { code: CODES.AGENT_PENDING_LIMIT, client_ip })
 */
export function throttledLog(logger: Logger, options: { intervalMs?: number; now?: () => number } = {}): ThrottledLog {
  const intervalMs = options.intervalMs ?? 10_000
  const now = options.now ?? Date.now
  const last = new Map<string, { at: number; suppressed: number }>()
  return function throttled(level, msg, fields) {
    const t = now()
    const key = typeof fields.code === 'string' ? fields.code : msg
    const seen = last.get(key)
    if (seen && t - seen.at < intervalMs) {
      seen.suppressed++
      return
    }
    logger[level](msg, seen?.suppressed ? { ...fields, suppressed: seen.suppressed } : fields)
    last.set(key, { at: t, suppressed: 0 })
  }
}
