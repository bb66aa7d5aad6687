import { describe, expect, test } from 'bun:test'
import { Counter, Gauge, Histogram, Registry, escapeLabel } from './prometheus.ts'

describe('Prometheus exposition', () => {
  test('counters and gauges render HELP, TYPE and one line per label set', () => {
    const r = new Registry()
    const c = r.add(new Counter('t_requests_total', 'Requests.', ['endpoint', 'status']))
    const g = r.add(new Gauge('t_open', 'Open now.'))
    c.inc({ endpoint: 'http://a', status: '200' })
    c.inc({ endpoint: 'http://a', status: '200' }, 2)
    c.inc({ endpoint: 'http://b', status: '404' })
    g.set({}, 7)
    expect(r.render()).toBe(
      [
        '# HELP t_requests_total Requests.',
        '# TYPE t_requests_total counter',
        't_requests_total{endpoint="http://a",status="200"} 3',
        't_requests_total{endpoint="http://b",status="404"} 1',
        '# HELP t_open Open now.',
        '# TYPE t_open gauge',
        't_open 7',
        '',
      ].join('\n'),
    )
  })

  test('histogram buckets are cumulative, with +Inf, _sum and _count', () => {
    const h = new Histogram('t_seconds', 'Latency.', ['e'], [0.1, 1, 0.5])
    for (const v of [0.05, 0.3, 0.7, 2]) h.observe({ e: 'x' }, v)
    expect(h.render().split('\n').slice(2)).toEqual([
      't_seconds_bucket{e="x",le="0.1"} 1',
      't_seconds_bucket{e="x",le="0.5"} 2',
      't_seconds_bucket{e="x",le="1"} 3',
      't_seconds_bucket{e="x",le="+Inf"} 4',
      't_seconds_sum{e="x"} 3.05',
      't_seconds_count{e="x"} 4',
    ])
  })

  test.each([
    { desc: 'quote', value: 'a"b', want: 'a\\"b' },
    { desc: 'backslash', value: 'a\\b', want: 'a\\\\b' },
    { desc: 'newline', value: 'a\nb', want: 'a\\nb' },
  ])('escapeLabel() escapes a $desc', ({ value, want }) => {
    expect(escapeLabel(value)).toBe(want)
  })

  test('collectors run before each render; names are validated and unique', () => {
    const r = new Registry()
    const g = r.add(new Gauge('t_sessions', 'Sessions.'))
    let n = 0
    r.collect(() => g.set({}, ++n))
    expect(r.render()).toContain('t_sessions 1')
    expect(r.render()).toContain('t_sessions 2')
    expect(() => r.add(new Gauge('t_sessions', 'again'))).toThrow(TypeError)
    expect(() => new Counter('bad-name', 'x')).toThrow(TypeError)
  })
})
