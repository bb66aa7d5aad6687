import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { redisUnavailable, startRedis, type RedisServer } from '../../test/helpers/redis.ts'
import { CODES } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'
import { SlidingWindow } from '../policy/actions/rate-limit.ts'
import { DECISION_TIMEOUT_MS, LOCAL_AFTER_FAILURE_MS, RedisWindows } from './shared-windows.ts'

// A real redis-server on loopback: the Lua sliding window against rate-limit.ts's in-process one,
// two nodes counting in one window, and what a node does while Redis is dead or hung.
const skip = redisUnavailable()
if (skip) console.warn(`shared-windows tests skipped: ${skip}`)

let redis: RedisServer
const open: RedisWindows[] = []

/** A logger that keeps what was logged (the node must log an outage once, not per request). */
function recorder(): Logger & { lines: { level: string; msg: string; fields: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = []
  const at = (level: string) => (msg: string, fields: Record<string, unknown> = {}) => void lines.push({ level, msg, fields })
  const logger = { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger, enabled: () => true }
  return logger
}

async function node(logger: Logger = recorder()): Promise<RedisWindows> {
  const w = new RedisWindows(redis.url, logger)
  open.push(w)
  await w.ready()
  return w
}

let keys = 0
const freshKey = () => `test:${process.pid}:${++keys}`

beforeAll(async () => {
  if (!skip) redis = await startRedis()
})
afterAll(async () => {
  for (const w of open) w.close()
  await redis?.stop()
})

describe.skipIf(skip !== undefined)('RedisWindows', () => {
  test.each<{ desc: string; capacity: number; windowMs: number; countRefused: boolean; at: number[] }>([
    { desc: 'capacity within one window, then refused', capacity: 2, windowMs: 60_000, countRefused: false, at: [0, 1000, 2000, 3000] },
    { desc: 'the previous window decays', capacity: 2, windowMs: 60_000, countRefused: false, at: [0, 1, 96_000, 96_001, 100_000, 119_999, 120_000] },
    { desc: 'refused requests counted (enforce: false)', capacity: 3, windowMs: 10_000, countRefused: true, at: [0, 1, 2, 3, 4, 9_999, 10_000, 15_000, 19_000, 30_000] },
    { desc: 'a window skipped forgets everything', capacity: 1, windowMs: 1000, countRefused: false, at: [0, 10, 2500, 2501, 2999, 3000] },
    { desc: 'capacity 5 over many windows', capacity: 5, windowMs: 5000, countRefused: false, at: Array.from({ length: 60 }, (_, i) => 1_000 + i * 397) },
  ])('decides as the in-process SlidingWindow does: $desc', async ({ capacity, windowMs, countRefused, at }) => {
    const w = await node()
    const local = new SlidingWindow(capacity, windowMs)
    const key = freshKey()
    // A base far from 0, on a window boundary, as real clocks are.
    const base = Math.ceil(1_800_000_000_000 / windowMs) * windowMs
    for (const t of at) {
      const want = local.hit('k', base + t, countRefused)
      const got = await w.hit(key, { capacity, windowMs, countRefused, now: base + t })
      expect([t, got]).toEqual([t, want])
    }
    expect(w.local).toBe(0)
  })

  test('two nodes count in one window (Redis clock): exactly the capacity passes between them', async () => {
    const [a, b] = [await node(), await node()]
    const key = freshKey()
    const options = { capacity: 7, windowMs: 60_000, countRefused: false }
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).hit(key, options)))
    expect(results.filter((r) => r && !r.limited).length).toBe(7)
    const refused = results.filter((r) => r?.limited)
    expect(refused.length).toBe(13)
    for (const r of refused) expect(r!.retryAfterSec).toBeGreaterThanOrEqual(1)
    expect(a.local + b.local).toBe(0)
  })

  test('Redis killed: decisions fall to the node at once, logged once, counted; back when Redis is', async () => {
    const logger = recorder()
    const w = await node(logger)
    const options = { capacity: 100, windowMs: 60_000, countRefused: false }
    expect(await w.hit(freshKey(), options)).toEqual({ limited: false, retryAfterSec: 0 })
    await redis.kill()
    const started = performance.now()
    for (let i = 0; i < 5; i++) expect(await w.hit(freshKey(), options)).toBeUndefined()
    // A dead Redis refuses at once: no request waits for a timeout.
    expect(performance.now() - started).toBeLessThan(DECISION_TIMEOUT_MS)
    expect(w.local).toBe(5)
    const warned = logger.lines.filter((l) => l.level === 'warn')
    expect(warned.length).toBe(1)
    expect(warned[0]!.fields['code']).toBe(CODES.CLUSTER_LIMITS_LOCAL)
    await redis.restart()
    const deadline = Date.now() + 5000 + LOCAL_AFTER_FAILURE_MS
    let back: unknown
    while (Date.now() < deadline && (back = await w.hit(freshKey(), options)) === undefined) await Bun.sleep(50)
    expect(back).toEqual({ limited: false, retryAfterSec: 0 })
    expect(logger.lines.some((l) => l.level === 'info' && /again/.test(l.msg))).toBe(true)
    expect(logger.lines.filter((l) => l.level === 'warn').length).toBe(1)
  })

  test('Redis hung (SIGSTOP): a decision waits at most the timeout, then the node counts alone for a while', async () => {
    const w = await node()
    const options = { capacity: 100, windowMs: 60_000, countRefused: false }
    expect(await w.hit(freshKey(), options)).toBeDefined()
    redis.pause()
    try {
      let started = performance.now()
      expect(await w.hit(freshKey(), options)).toBeUndefined()
      const waited = performance.now() - started
      expect(waited).toBeGreaterThanOrEqual(DECISION_TIMEOUT_MS - 20)
      expect(waited).toBeLessThan(DECISION_TIMEOUT_MS + 1000)
      // The next requests do not wait again: the node counts locally until LOCAL_AFTER_FAILURE_MS passed.
      started = performance.now()
      for (let i = 0; i < 10; i++) expect(await w.hit(freshKey(), options)).toBeUndefined()
      expect(performance.now() - started).toBeLessThan(50)
      expect(w.local).toBe(11)
    } finally {
      redis.resume()
    }
  })
})
