import { Redis } from 'ioredis'
import { CODES } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'
import { retryAfterSec } from '../policy/actions/rate-limit.ts'
import type { BreakerOptions } from '../policy/actions/circuit-breaker.ts'
import type { BreakerVerdict, SharedBreakers, SharedWindows, WindowHit } from '../policy/types.ts'

/** Every rate-limit bucket in Redis: `warren:rl:<endpoint id>:<action place>:<window ms>:<bucket>`. */
const WINDOWS = 'warren:rl:'
/** Every circuit breaker in Redis: `warren:cb:<endpoint id>:<action place>`. */
const BREAKERS = 'warren:cb:'
/**
 * How long one decision may wait for Redis before the request is counted locally: a request never
 * waits longer than this for a slow or hung Redis (a dead one refuses at once).
 */
export const DECISION_TIMEOUT_MS = 250
/** How long the node waits at start for this connection to Redis before it serves anyway. */
const CONNECT_WAIT_MS = 2000
/** After Redis failed a decision, how long this node counts locally before it asks Redis again. */
export const LOCAL_AFTER_FAILURE_MS = 1000

/** Lua setting `now` (ms): ARGV[`arg`] when a test passes its clock, else Redis' own (`TIME`). */
function clock(arg: number): string {
  return `
local now = tonumber(ARGV[${arg}])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end`
}

/**
 * The sliding window of rate-limit.ts's SlidingWindow, counted in Redis: one hash per bucket
 * (`w` window number, `p` previous window's count, `c` this window's), read and written in one
 * script so a decision is one round trip and no two nodes interleave. The clock is Redis' own
 * (`TIME`), so nodes whose clocks differ still agree on the window.
 * ARGV: capacity, window ms, count refused (1/0), now (tests). Returns limited (1/0), p, c and the ms
 * elapsed in the window, from which the node works out Retry-After.
 */
export const WINDOW_SCRIPT = `${clock(4)}
local cap = tonumber(ARGV[1])
local span = tonumber(ARGV[2])
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

/**
 * circuit-breaker.ts's CircuitBreaker in one Redis hash per breaker: `state` (absent: closed; `open`
 * with `until`; `half` with the `probe` start), and per slice k of the rolling window `i<k>` (its
 * number), `t<k>` (requests), `e<k>` (failures). ADMIT answers {allowed 1/0, probe 1/0 or ms to
 * wait}; ARGV: tripped ms, now (tests).
 */
export const ADMIT_SCRIPT = `${clock(2)}
local s = redis.call('HMGET', KEYS[1], 'state', 'until', 'probe')
local state, probe = s[1], tonumber(s[3])
if state == 'open' then
  local untilMs = tonumber(s[2])
  if now < untilMs then return {0, untilMs - now} end
  state, probe = 'half', nil
  redis.call('HSET', KEYS[1], 'state', 'half')
end
if state == 'half' then
  if probe and now - probe < tonumber(ARGV[1]) then return {0, 1000} end
  redis.call('HSET', KEYS[1], 'probe', now)
  return {1, 1}
end
return {1, 0}
`

/**
 * Counts one upstream answer and opens or closes the breaker as CircuitBreaker.record does.
 * ARGV: failed (1/0), probe (1/0), slice ms, slices, volume threshold, error threshold, tripped ms,
 * time to live ms, now (tests).
 */
export const RECORD_SCRIPT = `${clock(9)}
local failed = ARGV[1] == '1'
local tripped = tonumber(ARGV[7])
local state = redis.call('HGET', KEYS[1], 'state')
if ARGV[2] == '1' or state == 'half' then
  if failed then
    redis.call('HSET', KEYS[1], 'state', 'open', 'until', now + tripped)
    redis.call('PEXPIRE', KEYS[1], ARGV[8])
  else
    redis.call('DEL', KEYS[1])
  end
  return 0
end
if state == 'open' then return 0 end
local n = tonumber(ARGV[4])
local index = math.floor(now / tonumber(ARGV[3]))
local slot = index % n
if tonumber(redis.call('HGET', KEYS[1], 'i' .. slot)) ~= index then
  redis.call('HSET', KEYS[1], 'i' .. slot, index, 't' .. slot, 0, 'e' .. slot, 0)
end
redis.call('HINCRBY', KEYS[1], 't' .. slot, 1)
if failed then redis.call('HINCRBY', KEYS[1], 'e' .. slot, 1) end
local total, errors = 0, 0
for k = 0, n - 1 do
  local v = redis.call('HMGET', KEYS[1], 'i' .. k, 't' .. k, 'e' .. k)
  local i = tonumber(v[1])
  if i and i > index - n then
    total = total + tonumber(v[2])
    errors = errors + tonumber(v[3])
  end
end
if total >= tonumber(ARGV[5]) and errors / total >= tonumber(ARGV[6]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'until', now + tripped)
end
redis.call('PEXPIRE', KEYS[1], ARGV[8])
return 0
`

type Arg = string | number
type Scripts = Record<'warrenWindow' | 'warrenAdmit' | 'warrenRecord', (key: string, ...args: Arg[]) => Promise<number[]>>

/** The action types that keep state in Redis, as counted in /metrics. */
type SharedAction = 'rate-limit' | 'circuit-breaker'

/**
 * The `scope: cluster` state every node of a cluster shares: rate-limit windows and circuit breakers,
 * on a Redis connection of their own (its commands time out after DECISION_TIMEOUT_MS, which the
 * registry's must not). When Redis cannot decide (down, slow, an error) the action decides in its
 * own process (a node then allows up to a rate limit's capacity on its own, and opens its breakers
 * from what it sees), the node logs it once per outage (ERR_WARREN_7030) and counts every such
 * decision (`local`, in /metrics); it asks Redis again LOCAL_AFTER_FAILURE_MS later.
 */
export class RedisLimits implements SharedWindows, SharedBreakers {
  readonly #redis: Redis
  readonly #log: Logger
  readonly #scripts: Scripts
  readonly #clock: (() => number) | undefined
  #localUntil = 0
  #failing = false
  /** Decisions made locally because Redis could not make them, by action type. */
  readonly local: Record<SharedAction, number> = { 'rate-limit': 0, 'circuit-breaker': 0 }

  /** `clock` (ms) replaces Redis' own in the scripts: for tests only. */
  constructor(url: string, log: Logger, options: { clock?: () => number } = {}) {
    // Decisions fail at once while Redis is away instead of queueing; reconnects as the registry's does.
    this.#redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: DECISION_TIMEOUT_MS, retryStrategy: (attempt) => Math.min(100 * attempt, 1000) })
    // Failed reconnects are reported as decisions made locally (below), not as error events.
    this.#redis.on('error', () => {})
    this.#redis.defineCommand('warrenWindow', { numberOfKeys: 1, lua: WINDOW_SCRIPT })
    this.#redis.defineCommand('warrenAdmit', { numberOfKeys: 1, lua: ADMIT_SCRIPT })
    this.#redis.defineCommand('warrenRecord', { numberOfKeys: 1, lua: RECORD_SCRIPT })
    this.#scripts = this.#redis as unknown as Scripts
    this.#log = log
    this.#clock = options.clock
  }

  /**
   * Waits (at most CONNECT_WAIT_MS) for the connection: the node reached Redis moments before, and
   * the first requests should not be decided locally only because this connection was still opening.
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

  async hit(key: string, options: { capacity: number; windowMs: number; countRefused: boolean }): Promise<WindowHit | undefined> {
    const answer = await this.#run('rate-limit', 'warrenWindow', WINDOWS + key, [options.capacity, options.windowMs, options.countRefused ? 1 : 0])
    if (!answer) return undefined
    const [limited, previous, current, elapsed] = answer as [number, number, number, number]
    if (limited !== 1) return { limited: false, retryAfterSec: 0 }
    return { limited: true, retryAfterSec: retryAfterSec(options.capacity, options.windowMs, previous, current, elapsed / options.windowMs) }
  }

  async admit(key: string, options: BreakerOptions): Promise<BreakerVerdict | undefined> {
    const answer = await this.#run('circuit-breaker', 'warrenAdmit', BREAKERS + key, [options.trippedMs])
    if (!answer) return undefined
    const [allowed, detail] = answer as [number, number]
    return allowed === 1 ? { allowed: true, probe: detail === 1 } : { allowed: false, retryAfterSec: Math.max(1, Math.ceil(detail / 1000)) }
  }

  record(key: string, options: BreakerOptions, answer: { status: number; probe: boolean }): void {
    // An answer Redis misses is lost to the shared count; the next admit finds out whether Redis is back.
    if (!this.#usable()) return
    const args = [answer.status >= 500 ? 1 : 0, answer.probe ? 1 : 0, options.windowMs / options.buckets, options.buckets, options.volumeThreshold, options.errorThreshold, options.trippedMs, 2 * (options.windowMs + options.trippedMs)]
    this.#scripts.warrenRecord(BREAKERS + key, ...args, this.#clock?.() ?? '').catch(() => (this.#localUntil = Date.now() + LOCAL_AFTER_FAILURE_MS))
  }

  #usable(): boolean {
    return this.#redis.status === 'ready' && Date.now() >= this.#localUntil
  }

  /** Runs one script; undefined (and counted as decided locally) when Redis cannot answer in time. */
  async #run(action: SharedAction, script: keyof Scripts, key: string, args: Arg[]): Promise<number[] | undefined> {
    if (!this.#usable()) return this.#decideLocally(action, 'Redis is not connected')
    let answer: number[]
    try {
      answer = await this.#scripts[script](key, ...args, this.#clock?.() ?? '')
    } catch (err) {
      this.#localUntil = Date.now() + LOCAL_AFTER_FAILURE_MS
      return this.#decideLocally(action, err instanceof Error ? err.message : String(err))
    }
    if (this.#failing) {
      this.#failing = false
      this.#log.info('Redis decides scope: cluster rate limits and circuit breakers again', { decided_locally: { ...this.local } })
    }
    return answer
  }

  #decideLocally(action: SharedAction, why: string): undefined {
    this.local[action]++
    if (!this.#failing) {
      this.#failing = true
      this.#log.warn('Redis cannot decide scope: cluster rate limits and circuit breakers; this node decides them alone until it can', { code: CODES.CLUSTER_LIMITS_LOCAL, error: why })
    }
    return undefined
  }

  close(): void {
    this.#redis.disconnect()
  }
}
