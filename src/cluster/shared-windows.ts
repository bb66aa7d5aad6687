import { Redis } from 'ioredis'
import { CODES } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'
import { retryAfterSec } from '../policy/actions/rate-limit.ts'
import type { SharedWindows, WindowHit } from '../policy/types.ts'

/** Every rate-limit bucket in Redis: `warren:rl:<endpoint id>:<action place>:<window ms>:<bucket>`. */
const PREFIX = 'warren:rl:'
/**
 * How long one decision may wait for Redis before the request is counted locally: a request never
 * waits longer than this for a slow or hung Redis (a dead one refuses at once).
 */
export const DECISION_TIMEOUT_MS = 250
/** How long the node waits at start for this connection to Redis before it serves anyway. */
const CONNECT_WAIT_MS = 2000
/** After Redis failed a decision, how long this node counts locally before it asks Redis again. */
export const LOCAL_AFTER_FAILURE_MS = 1000

/**
 * The sliding window of rate-limit.ts's SlidingWindow, counted in Redis: one hash per bucket
 * (`w` window number, `p` previous window's count, `c` this window's), read and written in one
 * script so a decision is one round trip and no two nodes interleave. The clock is Redis' own
 * (`TIME`), so nodes whose clocks differ still agree on the window; a test may pass `now` (ms).
 * ARGV: capacity, window ms, count refused (1/0), now. Returns limited (1/0), p, c and the ms
 * elapsed in the window, from which the node works out Retry-After.
 */
export const WINDOW_SCRIPT = `
local cap = tonumber(ARGV[1])
local span = tonumber(ARGV[2])
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local window = math.floor(now / span)
local b = redis.call('HMGET', KEYS[1], 'w', 'p', 'c')
local w, p, c = tonumber(b[1]), tonumber(b[2]) or 0, tonumber(b[3]) or 0
if w ~= window then
  if w == window - 1 then p = c else p = 0 end
  c = 0
end
local elapsed = now - window * span
local limited = p * (1 - elapsed / span) + c + 1 > cap
if not limited or ARGV[3] == '1' then c = c + 1 end
redis.call('HSET', KEYS[1], 'w', window, 'p', p, 'c', c)
redis.call('PEXPIRE', KEYS[1], 2 * span)
if limited then return {1, p, c, elapsed} end
return {0, p, c, elapsed}
`

type WindowCommand = (key: string, capacity: number, windowMs: number, countRefused: 0 | 1, now: number | '') => Promise<[number, number, number, number]>

/**
 * Rate-limit windows every node of a cluster shares (rate-limit `scope: cluster`), on a Redis
 * connection of their own: its commands time out after DECISION_TIMEOUT_MS, which the registry's
 * must not. When Redis cannot decide (down, slow, an error) the action counts in its own process
 * (a node then allows up to the capacity on its own), the node logs it once per outage
 * (ERR_WARREN_7030) and counts every such decision (`local`, in /metrics).
 */
export class RedisWindows implements SharedWindows {
  readonly #redis: Redis
  readonly #log: Logger
  readonly #window: WindowCommand
  #localUntil = 0
  #failing = false
  /** Decisions made locally because Redis could not make them. */
  local = 0

  constructor(url: string, log: Logger) {
    // Decisions fail at once while Redis is away instead of queueing; reconnects as the registry's does.
    this.#redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: DECISION_TIMEOUT_MS, retryStrategy: (attempt) => Math.min(100 * attempt, 1000) })
    // Failed reconnects are reported as decisions made locally (below), not as error events.
    this.#redis.on('error', () => {})
    this.#redis.defineCommand('warrenWindow', { numberOfKeys: 1, lua: WINDOW_SCRIPT })
    this.#window = (this.#redis as unknown as { warrenWindow: WindowCommand }).warrenWindow.bind(this.#redis)
    this.#log = log
  }

  /**
   * Waits (at most CONNECT_WAIT_MS) for the connection: the node reached Redis moments before, and
   * the first requests should not be counted locally only because this connection was still opening.
   */
  async ready(): Promise<void> {
    if (this.#redis.status === 'ready') return
    let timer: ReturnType<typeof setTimeout> | undefined
    await new Promise<void>((resolve) => {
      this.#redis.once('ready', resolve)
      timer = setTimeout(resolve, CONNECT_WAIT_MS)
    })
    clearTimeout(timer)
  }

  /** See SharedWindows.hit; `now` (ms) replaces Redis' clock, for tests. */
  async hit(key: string, options: { capacity: number; windowMs: number; countRefused: boolean; now?: number }): Promise<WindowHit | undefined> {
    if (this.#redis.status !== 'ready' || Date.now() < this.#localUntil) return this.#countLocally('Redis is not connected')
    let answer: [number, number, number, number]
    try {
      answer = await this.#window(PREFIX + key, options.capacity, options.windowMs, options.countRefused ? 1 : 0, options.now ?? '')
    } catch (err) {
      this.#localUntil = Date.now() + LOCAL_AFTER_FAILURE_MS
      return this.#countLocally(err instanceof Error ? err.message : String(err))
    }
    if (this.#failing) {
      this.#failing = false
      this.#log.info('Redis decides rate limits again (scope: cluster)', { counted_locally: this.local })
    }
    const [limited, previous, current, elapsed] = answer
    if (limited !== 1) return { limited: false, retryAfterSec: 0 }
    return { limited: true, retryAfterSec: retryAfterSec(options.capacity, options.windowMs, previous, current, elapsed / options.windowMs) }
  }

  #countLocally(why: string): undefined {
    this.local++
    if (!this.#failing) {
      this.#failing = true
      this.#log.warn('Redis cannot decide rate limits (scope: cluster); this node counts them locally until it can', { code: CODES.CLUSTER_LIMITS_LOCAL, error: why })
    }
    return undefined
  }

  close(): void {
    this.#redis.disconnect()
  }
}
