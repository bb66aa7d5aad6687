import { createWriteStream, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { configureLogging, type Level } from '../lib/log.ts'

export type LogFormat = 'json' | 'logfmt' | 'term'

function logfmtValue(v: unknown): string {
  const text = typeof v === 'string' ? v : JSON.stringify(v)
  return text === '' || /[\s"=\\]/.test(text) ? JSON.stringify(text) : text
}

/**
 * Turns one JSON log line (`{ts, level, msg, …}`) into logfmt as ngrok's agent writes it:
 * `t=… lvl=info msg="…" key=value`.
 *
 * @example toLogfmt('{"ts":"T","level":"info","msg":"hi there","n":1}') // 't=T lvl=info msg="hi there" n=1'
 */
export function toLogfmt(jsonLine: string): string {
  let record: Record<string, unknown>
  try {
    record = JSON.parse(jsonLine) as Record<string, unknown>
  } catch {
    return jsonLine
  }
  const { ts, level, msg, ...rest } = record
  const parts = [`t=${logfmtValue(ts)}`, `lvl=${logfmtValue(level)}`, `msg=${logfmtValue(msg)}`]
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) parts.push(`${k}=${logfmtValue(v)}`)
  return parts.join(' ')
}

/**
 * Points the process logger where `--log` says (`stdout`, `stderr`, `false`, or a file, appended) in
 * the `--log-format` asked for. Returns whether log lines reach stdout (if not, the CLI prints the
 * `Forwarding` lines there itself).
 */
export function setupAgentLog(options: { log: string | false; format: LogFormat; level: Level }): { toStdout: boolean } {
  const target = options.log === false || options.log === 'false' ? 'false' : options.log
  let sink: (line: string) => void
  if (target === 'false') sink = () => {}
  else if (target === 'stdout') sink = (line) => process.stdout.write(line + '\n')
  else if (target === 'stderr') sink = (line) => process.stderr.write(line + '\n')
  else {
    mkdirSync(dirname(target), { recursive: true })
    const file = createWriteStream(target, { flags: 'a' })
    sink = (line) => void file.write(line + '\n')
  }
  const write = options.format === 'logfmt' ? (line: string) => sink(toLogfmt(line)) : sink
  configureLogging({ level: options.level, format: options.format === 'term' ? 'text' : 'json', write })
  return { toStdout: target === 'stdout' }
}
