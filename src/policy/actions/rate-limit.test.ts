import { afterEach, describe, expect, setSystemTime, test } from 'bun:test'
import { compile, exchange, loadError, responded } from '../../../test/helpers/actions.ts'
import { compilePolicy, runPhase, validatePolicy } from '../engine.ts'
import type { ConfigIssue, ConfigIssues } from '../issue.ts'
import { SlidingWindow } from './rate-limit.ts'

afterEach(() => setSystemTime())

const BASE = { name: 'api', algorithm: 'sliding_window', capacity: 2, rate: '60s', bucket_key: ['conn.client_ip'] }

describe('rate-limit config', () => {
  test.each<{ desc: string; config: unknown; want: RegExp | undefined }>([
    { desc: 'ngrok example', config: BASE, want: undefined },
    { desc: 'name and algorithm optional', config: { capacity: 1, rate: '1m', bucket_key: ['req.host'] }, want: undefined },
    { desc: 'capacity required', config: { rate: '60s', bucket_key: ['req.host'] }, want: /capacity/ },
    { desc: 'capacity 0', config: { ...BASE, capacity: 0 }, want: /capacity/ },
    { desc: 'rate not a duration', config: { ...BASE, rate: 'often' }, want: /between 1s and 24h/ },
    { desc: 'rate over 24h', config: { ...BASE, rate: '25h' }, want: /between 1s and 24h/ },
    { desc: 'unknown algorithm', config: { ...BASE, algorithm: 'token_bucket' }, want: /algorithm/ },
    { desc: 'no bucket key', config: { ...BASE, bucket_key: [] }, want: /at least one bucket key/ },
    { desc: 'bucket key is CEL', config: { ...BASE, bucket_key: ['conn.client_ip +'] }, want: /^ERR_WARREN_2002: / },
    { desc: 'scope cluster', config: { ...BASE, scope: 'cluster' }, want: undefined },
    { desc: 'unknown scope', config: { ...BASE, scope: 'global' }, want: /scope/ },
  ])('$desc', ({ config, want }) => {
    const got = loadError({ type: 'rate-limit', config })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe('rate-limit at runtime', () => {
  test('per bucket: capacity passes, then 429 with Retry-After; other buckets unaffected', async () => {
    setSystemTime(new Date(1_800_000_000_000))
    const rules = compile({ on_http_request: [{ actions: [{ type: 'rate-limit', config: BASE }] }] }).on_http_request
    const from = (ip: string) => {
      const ex = exchange('http://a.test/')
      ;(ex.conn as { clientIp: string }).clientIp = ip
      return ex
    }
    for (let i = 0; i < 2; i++) expect((await runPhase(rules, from('10.0.0.1'))).kind).toBe('continue')
    const third = from('10.0.0.1')
    const res = responded(await runPhase(rules, third))!
    expect(res.status).toBe(429)
    expect(res.headers.get('warren-error-code')).toBe('ERR_WARREN_2104')
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(third.actions['rate_limit']).toEqual({ bucket_key: '10.0.0.1', limited: true, error: { code: '', message: '' } })
    expect((await runPhase(rules, from('10.0.0.2'))).kind).toBe('continue')
    // Two windows later the old counts have slid out.
    setSystemTime(new Date(1_800_000_000_000 + 120_000))
    expect((await runPhase(rules, from('10.0.0.1'))).kind).toBe('continue')
  })

  test('enforce false only reports', async () => {
    const rules = compile({ on_http_request: [{ actions: [{ type: 'rate-limit', config: { ...BASE, capacity: 1, enforce: false } }] }] }).on_http_request
    await runPhase(rules, exchange())
    const ex = exchange()
    expect((await runPhase(rules, ex)).kind).toBe('continue')
    expect(ex.actions['rate_limit']).toMatchObject({ limited: true })
  })
})

describe('rate-limit scope: cluster', () => {
  const policy = { on_http_request: [{ actions: [{ type: 'rate-limit', config: { ...BASE, capacity: 1, scope: 'cluster' } }] }] }

  test('in one process without a cluster it counts here, as scope: endpoint', async () => {
    const rules = compile(policy).on_http_request
    expect((await runPhase(rules, exchange())).kind).toBe('continue')
    expect(responded(await runPhase(rules, exchange()))?.status).toBe(429)
  })

  test('refused where nothing is shared (a worker of --workers N), naming the field and the reason', () => {
    let issues: ConfigIssue[] = []
    try {
      compilePolicy(validatePolicy(policy), { scheme: 'http', cloud: false, clusterScope: { refused: 'needs cluster.redis' } })
    } catch (err) {
      issues = (err as ConfigIssues).issues
    }
    expect(issues).toEqual([{ code: 'ERR_WARREN_2170', path: ['on_http_request', 0, 'actions', 0, 'config'], message: 'action "rate-limit": scope: cluster needs cluster.redis' }])
    // scope: endpoint loads there.
    const local = { on_http_request: [{ actions: [{ type: 'rate-limit', config: BASE }] }] }
    expect(() => compilePolicy(validatePolicy(local), { scheme: 'http', cloud: false, clusterScope: { refused: 'needs cluster.redis' } })).not.toThrow()
  })
})

describe('SlidingWindow', () => {
  test.each<{ desc: string; hits: [number, boolean][] }>([
    { desc: 'capacity within one window', hits: [[0, false], [1000, false], [2000, true]] },
    // At 60% into the next window, 40% of the previous 2 still count: 0.8 + 1 ≤ 2 passes, then 0.8 + 2 > 2.
    { desc: 'previous window decays', hits: [[0, false], [1, false], [96_000, false], [96_001, true]] },
    { desc: 'refused requests are not counted', hits: [[0, false], [1, false], [2, true], [3, true], [120_000, false]] },
  ])('$desc', ({ hits }) => {
    const w = new SlidingWindow(2, 60_000)
    for (const [at, limited] of hits) expect([at, w.hit('k', at).limited]).toEqual([at, limited])
  })

  test('Retry-After points to when one more request passes', () => {
    const w = new SlidingWindow(2, 60_000)
    w.hit('k', 0)
    w.hit('k', 0)
    const { retryAfterSec } = w.hit('k', 30_000)
    expect(retryAfterSec).toBe(60)
    expect(w.hit('k', 30_000 + retryAfterSec * 1000).limited).toBe(false)
  })

  test('idle keys are dropped', () => {
    const w = new SlidingWindow(1, 1000)
    for (let i = 0; i < 100; i++) w.hit(`k${i}`, 0)
    w.hit('fresh', 5000)
    expect(w.size).toBe(1)
  })
})
