import { expect, test } from 'bun:test'
import type { Logger } from './log.ts'
import { throttledLog } from './throttled-log.ts'

function recorder() {
  const lines: { level: string; msg: string; fields: Record<string, unknown> | undefined }[] = []
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields })
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger, enabled: () => true }
  return { logger, lines }
}

test('throttledLog() writes one line per code per interval and counts the ones it left out', () => {
  const { logger, lines } = recorder()
  let clock = 0
  const log = throttledLog(logger, { intervalMs: 1000, now: () => clock })
  for (let i = 0; i < 50; i++) log('warn', 'cut', { code: 'ERR_WARREN_4008', n: i })
  log('info', 'refused', { code: 'ERR_WARREN_4010' })
  expect(lines).toEqual([
    { level: 'warn', msg: 'cut', fields: { code: 'ERR_WARREN_4008', n: 0 } },
    { level: 'info', msg: 'refused', fields: { code: 'ERR_WARREN_4010' } },
  ])
  clock = 999
  log('warn', 'cut', { code: 'ERR_WARREN_4008', n: 50 })
  expect(lines).toHaveLength(2)
  clock = 1000
  log('warn', 'cut', { code: 'ERR_WARREN_4008', n: 51 })
  expect(lines[2]).toEqual({ level: 'warn', msg: 'cut', fields: { code: 'ERR_WARREN_4008', n: 51, suppressed: 50 } })
  clock = 5000
  log('warn', 'cut', { code: 'ERR_WARREN_4008', n: 52 })
  expect(lines[3]!.fields).toEqual({ code: 'ERR_WARREN_4008', n: 52 })
})

test('throttledLog() groups lines without a code by their message', () => {
  const { logger, lines } = recorder()
  const log = throttledLog(logger, { intervalMs: 1000, now: () => 0 })
  for (let i = 0; i < 3; i++) log('info', 'handshake failed', { i })
  log('info', 'other', {})
  expect(lines.map((l) => l.msg)).toEqual(['handshake failed', 'other'])
})
