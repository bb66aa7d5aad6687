import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { memoryOf, sampleRss } from './framework/memory.ts'
import { hostFetch, startEdge, type Edge } from './framework/process.ts'
import { startUpstream } from './framework/upstreams.ts'

const GB = 1024 ** 3
/** What either 1 GB transfer may add to the edge's RSS: nothing near the body is held. */
const GROWTH_LIMIT = 80 * 1024 ** 2

const upstream = startUpstream('stream-origin')
let edge: Edge
beforeAll(async () => {
  edge = await startEdge({
    policies: { 's.yml': `url: http://s.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: forward-external, config: {url: "http://127.0.0.1:${upstream.port}"}}]\n` },
    args: ['--no-request-log'],
  })
})
afterAll(async () => {
  await edge?.stop()
  upstream.stop(true)
})

describe('bodies stream through the edge', () => {
  // The edge keeps the pages it frees (src/cli/allocator.ts), so its RSS stays at the peak of what it
  // did before (~110 MB after one of these transfers): the bound is on growth, not on the total.
  test('a 1 GB upload reaches the upstream whole while the edge grows by less than 80 MB', async () => {
    const chunk = new Uint8Array(1024 * 1024).fill(98)
    let sent = 0
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= GB) return controller.close()
        controller.enqueue(chunk)
        sent += chunk.length
      },
    })
    const idle = memoryOf(edge.proc.pid).rss
    const sampler = sampleRss(edge.proc.pid)
    const res = await hostFetch(edge, 's.warren.localhost', '/count', { method: 'POST', body, duplex: 'half' } as RequestInit)
    const json = (await res.json()) as { bodyBytes: number }
    const peak = sampler.stop()
    expect(res.status).toBe(200)
    expect(json.bodyBytes).toBe(GB)
    console.log(`upload: edge peak RSS ${(peak / 1024 ** 2).toFixed(1)} MB (idle ${(idle / 1024 ** 2).toFixed(1)} MB)`)
    expect(peak - idle).toBeLessThan(GROWTH_LIMIT)
  }, 120_000)

  // Downloads: the reads' buffers make the allocator hold more than an upload does (measured peak
  // 115-145 MB with 74 MB idle before the allocator kept its pages).
  test('a 1 GB download arrives whole while the edge grows by less than 80 MB', async () => {
    const idle = memoryOf(edge.proc.pid).rss
    const sampler = sampleRss(edge.proc.pid)
    const res = await hostFetch(edge, 's.warren.localhost', `/bytes/${GB}`)
    let received = 0
    for await (const part of res.body!) received += part.length
    const peak = sampler.stop()
    expect(received).toBe(GB)
    console.log(`download: edge peak RSS ${(peak / 1024 ** 2).toFixed(1)} MB (idle ${(idle / 1024 ** 2).toFixed(1)} MB)`)
    expect(peak - idle).toBeLessThan(GROWTH_LIMIT)
  }, 120_000)
})
