import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { redisUnavailable, startRedis, type RedisServer } from '../../test/helpers/redis.ts'
import { CODES } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'
import { CircuitBreaker, type BreakerOptions } from '../policy/actions/circuit-breaker.ts'
import { SlidingWindow } from '../policy/actions/rate-limit.ts'
import { DECISION_TIMEOUT_MS, LOCAL_AFTER_FAILURE_MS, RedisLimits } from './shared-limits.ts'

// A real redis-server on loopback: the Lua sliding window and circuit breaker against the in-process
// ones, two nodes sharing one, and what a node does while Redis is dead or hung.
const skip = redisUnavailable()
if (skip) console.warn(`shared-limits tests skipped: ${skip}`)

let redis: RedisServer
const open: RedisLimits[] = []

/** A logger that keeps what was logged (the node must log an outage once, not per request). */
function recorder(): Logger & { lines: { level: string; msg: string; fields: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = []
  const at = (level: string) => (msg: string, fields: Record<string, unknown> = {}) => void lines.push({ level, msg, fields })
  const logger = { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger, enabled: () => true }
  return logger
}

/** One node's view of Redis; `clock` replaces Redis' own (ms). */
async function node(logger: Logger = recorder(), clock?: () => number): Promise<RedisLimits> {
  const w = new RedisLimits(redis.url, logger, clock ? { clock } : {})
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

describe.skipIf(skip !== undefined)('RedisLimits: rate-limit windows', () => {
  test.each<{ desc: string; capacity: number; windowMs: number; countRefused: boolean; at: number[] }>([
    { desc: 'capacity within one window, then refused', capacity: 2, windowMs: 60_000, countRefused: false, at: [0, 1000, 2000, 3000] },
    { desc: 'the previous window decays', capacity: 2, windowMs: 60_000, countRefused: false, at: [0, 1, 96_000, 96_001, 100_000, 119_999, 120_000] },
    { desc: 'refused requests counted (enforce: false)', capacity: 3, windowMs: 10_000, countRefused: true, at: [0, 1, 2, 3, 4, 9_999, 10_000, 15_000, 19_000, 30_000] },
    { desc: 'a window skipped forgets everything', capacity: 1, windowMs: 1000, countRefused: false, at: [0, 10, 2500, 2501, 2999, 3000] },
    { desc: 'capacity 5 over many windows', capacity: 5, windowMs: 5000, countRefused: false, at: Array.from({ length: 60 }, (_, i) => 1_000 + i * 397) },
  ])('decides as the in-process SlidingWindow does: $desc', async ({ capacity, windowMs, countRefused, at }) => {
    // A base far from 0, on a window boundary, as real clocks are.
    const base = Math.ceil(1_800_000_000_000 / windowMs) * windowMs
    let now = base
    const w = await node(recorder(), () => now)
    const local = new SlidingWindow(capacity, windowMs)
    const key = freshKey()
    for (const t of at) {
      now = base + t
      const want = local.hit('k', now, countRefused)
      const got = await w.hit(key, { capacity, windowMs, countRefused })
      expect([t, got]).toEqual([t, want])
    }
    expect(w.local['rate-limit']).toBe(0)
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
    expect(a.local['rate-limit'] + b.local['rate-limit']).toBe(0)
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
    expect(w.local['rate-limit']).toBe(5)
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
      expect(w.local['rate-limit']).toBe(11)
    } finally {
      redis.resume()
    }
  })
})

describe.skipIf(skip !== undefined)('RedisLimits: circuit breakers', () => {
  const OPTIONS: BreakerOptions = { errorThreshold: 0.5, volumeThreshold: 4, windowMs: 10_000, trippedMs: 5000, buckets: 10 }

  /** [ms, upstream status] per request; 0: the request is not answered (nothing recorded). */
  test.each<{ desc: string; options: BreakerOptions; requests: [number, number][] }>([
    { desc: 'trips at the volume and error share, refuses while tripped, a probe closes it', options: OPTIONS, requests: [[0, 500], [100, 200], [200, 500], [300, 500], [400, 200], [4000, 200], [5400, 200], [5500, 200], [5600, 500], [5700, 200]] },
    { desc: 'a failing probe opens it again', options: OPTIONS, requests: [[0, 500], [1, 500], [2, 500], [3, 500], [5003, 500], [5004, 200], [9000, 200], [10_003, 200], [10_004, 200]] },
    { desc: 'old slices slide out of the window', options: OPTIONS, requests: [[0, 500], [1, 500], [2, 500], [9_000, 200], [12_000, 500], [12_001, 200], [12_002, 200], [12_003, 500]] },
    { desc: 'a probe that never answers blocks others for the tripped duration only', options: { ...OPTIONS, volumeThreshold: 2 }, requests: [[0, 500], [1, 500], [5001, 0], [5002, 200], [10_002, 200], [10_003, 200]] },
    { desc: 'one slice, threshold 1.0', options: { ...OPTIONS, buckets: 1, errorThreshold: 1, volumeThreshold: 3 }, requests: [[0, 500], [1, 200], [2, 500], [3, 500], [10_001, 500], [10_002, 500], [10_003, 500], [10_004, 200]] },
  ])('decides as the in-process CircuitBreaker does: $desc', async ({ options, requests }) => {
    let now = 1_800_000_000_000
    const base = now
    const w = await node(recorder(), () => now)
    const local = new CircuitBreaker(options)
    const key = freshKey()
    let refused = 0
    for (const [t, status] of requests) {
      now = base + t
      const want = local.admit(now)
      const got = await w.admit(key, options)
      expect([t, got]).toEqual([t, want])
      if (!want.allowed) refused++
      if (!want.allowed || status === 0) continue
      local.record(now, status, want.probe)
      w.record(key, options, { status, probe: want.probe })
    }
    // Every case trips the breaker at least once.
    expect(refused).toBeGreaterThan(0)
    expect(w.local['circuit-breaker']).toBe(0)
  })

  test('failures seen by two nodes trip the breaker for both (neither saw enough alone)', async () => {
    const [a, b] = [await node(), await node()]
    const key = freshKey()
    for (const n of [a, b, a, b]) {
      const verdict = await n.admit(key, OPTIONS)
      expect(verdict).toEqual({ allowed: true, probe: false })
      n.record(key, OPTIONS, { status: 502, probe: false })
    }
    // Records are not awaited: a round trip on each connection makes sure Redis has run them.
    await Promise.all([a.admit(freshKey(), OPTIONS), b.admit(freshKey(), OPTIONS)])
    expect(await a.admit(key, OPTIONS)).toEqual({ allowed: false, retryAfterSec: 5 })
    expect(await b.admit(key, OPTIONS)).toEqual({ allowed: false, retryAfterSec: 5 })
  })

  test('Redis killed: admit falls to the node at once, counted apart from rate limits', async () => {
    const w = await node()
    expect(await w.admit(freshKey(), OPTIONS)).toEqual({ allowed: true, probe: false })
    await redis.kill()
    try {
      expect(await w.admit(freshKey(), OPTIONS)).toBeUndefined()
      w.record(freshKey(), OPTIONS, { status: 500, probe: false })
      expect(w.local).toEqual({ 'rate-limit': 0, 'circuit-breaker': 1 })
    } finally {
      await redis.restart()
    }
  })
})
