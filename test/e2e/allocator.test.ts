import { afterAll, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { curl } from './framework/curl.ts'
import { startEdge, type Edge } from './framework/process.ts'
import { startUpstream } from './framework/upstreams.ts'

// `warren serve` starts itself again (execve, same pid) with mimalloc's page purging off, unless the
// operator set MIMALLOC_PURGE_DELAY (src/cli/allocator.ts), and the restarted process keeps its flags.

const upstream = startUpstream()
const edges: Edge[] = []
afterAll(async () => {
  await Promise.all(edges.map((e) => e.stop()))
  upstream.stop(true)
})

const policy = `url: http://alloc.warren.localhost
traffic_policy:
  on_http_request:
    - actions:
        - type: forward-external
          config: {url: "http://127.0.0.1:${upstream.port}"}
`

function environOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0')
}

test.each([
  { desc: 'unset: the edge keeps freed pages', env: {}, want: 'MIMALLOC_PURGE_DELAY=-1' },
  { desc: "the operator's value is kept", env: { MIMALLOC_PURGE_DELAY: '10' }, want: 'MIMALLOC_PURGE_DELAY=10' },
])('serve, MIMALLOC_PURGE_DELAY $desc', async ({ env, want }) => {
  const edge = await startEdge({ policies: { 'alloc.yml': policy }, env })
  edges.push(edge)
  expect(environOf(edge.proc.pid)).toContain(want)
  // The same process answers on the ports its flags named.
  const res = await curl(['-H', 'Host: alloc.warren.localhost', `${edge.base}/a`])
  expect(res.status).toBe(200)
  expect(JSON.parse(res.body).path).toBe('/a')
  expect(edge.logs()).toContain('warren edge started')
})
