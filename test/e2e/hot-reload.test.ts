import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { curl } from './framework/curl.ts'
import { eventually, hostFetch, startEdge, type Edge } from './framework/process.ts'

const respond = (host: string, body: string, extra = '') => `url: http://${host}
${extra}traffic_policy:
  on_http_request:
    - actions:
        - type: custom-response
          config: {body: "${body}"}
`

async function bodyOf(edge: Edge, host: string): Promise<string> {
  const res = await hostFetch(edge, host)
  return `${res.status} ${await res.text()}`
}

let edge: Edge
beforeAll(async () => {
  edge = await startEdge({ policies: { 'a.yml': respond('a.warren.localhost', 'A1') } })
})
afterAll(async () => {
  await edge?.stop()
})

/** Each change must be visible within 1 s (the bar). */
const within = (expected: string, host: string) => eventually(async () => (await bodyOf(edge, host)) === expected, 1000)

describe('hot reload of the policies directory', () => {
  test('create', async () => {
    edge.writePolicy('b.yml', respond('b.warren.localhost', 'B1'))
    expect(await within('200 B1', 'b.warren.localhost')).toBe(true)
  })

  test('modify in place', async () => {
    edge.writePolicy('a.yml', respond('a.warren.localhost', 'A2'))
    expect(await within('200 A2', 'a.warren.localhost')).toBe(true)
  })

  test('atomic rename-save (write temp file, rename over)', async () => {
    const tmp = join(edge.policies, '.a.yml.tmp')
    writeFileSync(tmp, respond('a.warren.localhost', 'A3'))
    renameSync(tmp, join(edge.policies, 'a.yml'))
    expect(await within('200 A3', 'a.warren.localhost')).toBe(true)
  })

  test('rename a file: its endpoints stay', async () => {
    renameSync(join(edge.policies, 'b.yml'), join(edge.policies, 'b2.yml'))
    await edge.waitForLog(/"changed":\["b.yml","b2.yml"\]|"changed":\["b2.yml","b.yml"\]/, 2000)
    expect(await bodyOf(edge, 'b.warren.localhost')).toBe('200 B1')
  })

  test('delete', async () => {
    edge.removePolicy('b2.yml')
    expect(await within('404 ', 'b.warren.localhost').then(async (ok) => ok || (await bodyOf(edge, 'b.warren.localhost')).startsWith('404'))).toBe(true)
  })

  test('a broken edit keeps the previous endpoints serving and logs file:line:col', async () => {
    edge.writePolicy('a.yml', 'url: http://a.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions:\n        - type: no-such-action\n')
    const line = await edge.waitForLog(/a\.yml:5:17: .*unknown action type \\"no-such-action\\"/, 2000)
    expect(JSON.parse(line).serving_previous).toBe(true)
    expect(await bodyOf(edge, 'a.warren.localhost')).toBe('200 A3')
    // Fixing the file applies again.
    edge.writePolicy('a.yml', respond('a.warren.localhost', 'A4'))
    expect(await within('200 A4', 'a.warren.localhost')).toBe(true)
  })

  test('a pooling conflict is reported naming both files; the first endpoint keeps serving', async () => {
    edge.writePolicy('c.yml', respond('a.warren.localhost', 'C'))
    const line = await edge.waitForLog(/c\.yml:1:6: http:\/\/a\.warren\.localhost \(public\) is already served by a\.yml/, 2000)
    expect(JSON.parse(line).code).toBe('ERR_WARREN_1005')
    expect(await bodyOf(edge, 'a.warren.localhost')).toBe('200 A4')
    edge.removePolicy('c.yml')
  })

  test('pooled endpoints share traffic', async () => {
    edge.writePolicy('p1.yml', respond('pool.warren.localhost', 'P1', 'pooling_enabled: true\n'))
    edge.writePolicy('p2.yml', respond('pool.warren.localhost', 'P2', 'pooling_enabled: true\n'))
    expect(await eventually(async () => {
      const seen = new Set<string>()
      for (let i = 0; i < 4; i++) seen.add(await bodyOf(edge, 'pool.warren.localhost'))
      return seen.has('200 P1') && seen.has('200 P2')
    }, 2000)).toBe(true)
  })

  test('pooled https endpoints: requests on fresh TLS connections take turns too', async () => {
    edge.writePolicy('p3.yml', respond('poolsec.warren.localhost', 'P3', 'pooling_enabled: true\n').replace('http://', 'https://'))
    edge.writePolicy('p4.yml', respond('poolsec.warren.localhost', 'P4', 'pooling_enabled: true\n').replace('http://', 'https://'))
    const fresh = async () => (await curl(['--cacert', edge.caPath, `https://poolsec.warren.localhost:${edge.httpsPort}/`])).body
    // Until both files are loaded (before, the name has no endpoint and the handshake is refused), two
    // connections in a row reach both members.
    expect(await eventually(async () => new Set([await fresh(), await fresh()]).size === 2, 5000)).toBe(true)
    // One connection per request: the TLS front looks at the pool without taking a turn of its own
    // (it used to, and with two members every first request on a connection went to the same one).
    const bodies = [await fresh(), await fresh(), await fresh(), await fresh()]
    expect(new Set(bodies)).toEqual(new Set(['P3', 'P4']))
  })

  test('SIGHUP reloads', async () => {
    const before = (edge.logs().match(/"reason":"SIGHUP"/g) ?? []).length
    edge.proc.kill('SIGHUP')
    expect(await eventually(async () => (edge.logs().match(/"reason":"SIGHUP"/g) ?? []).length > before, 2000)).toBe(true)
    expect(await bodyOf(edge, 'a.warren.localhost')).toBe('200 A4')
  })

  test('requests in flight finish on the snapshot they started with', async () => {
    const slow = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: async () => (await Bun.sleep(600), new Response('from upstream')) })
    try {
      edge.writePolicy('s.yml', `url: http://s.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: forward-external, config: {url: "http://127.0.0.1:${slow.port}"}}]\n`)
      expect(await eventually(async () => (await hostFetch(edge, 's.warren.localhost')).status === 200, 2000)).toBe(true)
      const inFlight = hostFetch(edge, 's.warren.localhost', '/')
      await Bun.sleep(100)
      edge.writePolicy('s.yml', respond('s.warren.localhost', 'replaced'))
      expect(await within('200 replaced', 's.warren.localhost')).toBe(true)
      expect(await (await inFlight).text()).toBe('from upstream')
    } finally {
      slow.stop(true)
    }
  })
})
