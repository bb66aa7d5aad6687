/**
 * One logger for the process. JSON lines when stdout is not a terminal (machines read it),
 * a short human line otherwise. Children carry `{ component, endpoint, … }` fields.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error'
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
  child(fields: Record<string, unknown>): Logger
  enabled(level: Level): boolean
}

export interface LogOptions {
  level?: Level
  format?: 'json' | 'text'
  write?: (line: string) => void
  /** Fields every line carries (`worker` in a worker process of `warren serve --workers`). */
  fields?: Record<string, unknown>
}

const settings: Required<LogOptions> = {
  level: 'info',
  format: process.stdout.isTTY ? 'text' : 'json',
  write: (line) => process.stdout.write(line + '\n'),
  fields: {},
}

/** Changes level, format or sink for every logger, including ones made earlier. */
export function configureLogging(options: LogOptions): void {
  if (options.level) settings.level = options.level
  if (options.format) settings.format = options.format
  if (options.write) settings.write = options.write
  if (options.fields) settings.fields = options.fields
}

function formatText(level: Level, msg: string, fields: Record<string, unknown>): string {
  const parts = [new Date().toISOString(), level.toUpperCase().padEnd(5), msg]
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue
    parts.push(`${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
  }
  return parts.join(' ')
}

function makeLogger(base: Record<string, unknown>): Logger {
  function emit(level: Level, msg: string, fields?: Record<string, unknown>): void {
    if (RANK[level] < RANK[settings.level]) return
    const all = { ...settings.fields, ...base, ...fields }
    settings.write(
      settings.format === 'json'
        ? JSON.stringify({ ts: new Date().toISOString(), level, msg, ...all })
        : formatText(level, msg, all),
    )
  }
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => makeLogger({ ...base, ...fields }),
    enabled: (level) => RANK[level] >= RANK[settings.level],
  }
}

export const log: Logger = makeLogger({})
