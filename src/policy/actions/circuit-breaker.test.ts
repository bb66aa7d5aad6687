import { afterEach, describe, expect, setSystemTime, test } from 'bun:test'
import { compile, exchange, loadError, responded } from '../../../test/helpers/actions.ts'
import { compilePolicy, runPhase, validatePolicy } from '../engine.ts'
import { CircuitBreaker } from './circuit-breaker.ts'

afterEach(() => setSystemTime())

describe('circuit-breaker config', () => {
  test.each<{ desc: string; config: unknown; want: RegExp | undefined }>([
    { desc: 'defaults', config: {}, want: undefined },
    { desc: 'ngrok example', config: { error_threshold: 0, volume_threshold: 1, window_duration: '60s', tripped_duration: '2m', enforce: true }, want: undefined },
    { desc: 'threshold above 1', config: { error_threshold: 1.5 }, want: /error_threshold/ },
    { desc: 'window too long', config: { window_duration: '3m' }, want: /window_duration must be a duration between 1s and 2m/ },
    { desc: 'tripped too short', config: { tripped_duration: '500ms' }, want: /tripped_duration must be/ },
    { desc: 'volume 0', config: { volume_threshold: 0 }, want: /volume_threshold/ },
    { desc: 'scope cluster', config: { scope: 'cluster' }, want: undefined },
    { desc: 'unknown scope', config: { scope: 'node' }, want: /scope/ },
  ])('$desc', ({ config, want }) => {
    const got = loadError({ type: 'circuit-breaker', config })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('circuit-breaker scope: cluster', () => {
  test('refused where nothing is shared (a worker of --workers N), enforce or not', () => {
    for (const enforce of [true, false]) {
      const policy = validatePolicy({ on_http_request: [{ actions: [{ type: 'circuit-breaker', config: { scope: 'cluster', enforce } }] }] })
      expect(() => compilePolicy(policy, { scheme: 'http', cloud: false, clusterScope: { refused: 'needs cluster.redis' } })).toThrow('scope: cluster needs cluster.redis')
    }
  })
})

describe('CircuitBreaker', () => {
  const options = { errorThreshold: 0.5, volumeThreshold: 4, windowMs: 10_000, trippedMs: 5_000, buckets: 10 }
  test('trips on the error share once the volume is there, refuses, then one probe decides', () => {
    const b = new CircuitBreaker(options)
    for (const status of [200, 500, 200]) b.record(0, status, false)
    expect(b.state).toBe('closed')
    b.record(100, 502, false) // 2 of 4 failed
    expect(b.state).toBe('open')
    expect(b.admit(1000)).toEqual({ allowed: false, retryAfterSec: 5 })
    const probe = b.admit(5100)
    expect(probe).toEqual({ allowed: true, probe: true })
    expect(b.admit(5200).allowed).toBe(false) // only one probe at a time
    b.record(5300, 503, true)
    expect(b.state).toBe('open')
    expect(b.admit(10_400)).toEqual({ allowed: true, probe: true })
    b.record(10_500, 200, true)
    expect(b.state).toBe('closed')
    expect(b.admit(10_600)).toEqual({ allowed: true, probe: false })
  })

  test('errors older than the window do not count', () => {
    const b = new CircuitBreaker(options)
    b.record(0, 500, false)
    b.record(0, 500, false)
    b.record(20_000, 200, false)
    b.record(20_000, 200, false)
    b.record(20_000, 500, false)
    b.record(20_000, 200, false)
    expect(b.state).toBe('closed')
  })
})

describe('circuit-breaker at runtime', () => {
  test('counts upstream statuses reported by the data path and answers 503 when open', async () => {
    setSystemTime(new Date(1_800_000_000_000))
    const rules = compile({ on_http_request: [{ actions: [{ type: 'circuit-breaker', config: { volume_threshold: 2, error_threshold: 0.5 } }] }] }).on_http_request
    for (let i = 0; i < 2; i++) {
      const ex = exchange()
      expect((await runPhase(rules, ex)).kind).toBe('continue')
      for (const observe of ex.upstreamObservers ?? []) observe(502)
    }
    const res = responded(await runPhase(rules, exchange()))!
    expect(res.status).toBe(503)
    expect(res.headers.get('warren-error-code')).toBe('ERR_WARREN_2105')
    expect(res.headers.get('retry-after')).toBe('10')
  })

  test('enforce false never trips', async () => {
    const rules = compile({ on_http_request: [{ actions: [{ type: 'circuit-breaker', config: { volume_threshold: 1, enforce: false } }] }] }).on_http_request
    for (let i = 0; i < 3; i++) {
      const ex = exchange()
      expect((await runPhase(rules, ex)).kind).toBe('continue')
      expect(ex.upstreamObservers).toBeUndefined()
    }
  })
})
