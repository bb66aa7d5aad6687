import { CHROMIUM, loadBrowser } from './framework/chromium.ts'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync } from 'node:fs'
import { edgeFlags, startAgent, type AgentProcess } from './framework/agent.ts'
import { freePort } from './framework/ports.ts'
import { hostFetch, startEdge, type Edge } from './framework/process.ts'
import { startUpstream } from './framework/upstreams.ts'

// The agent's local inspector web UI (compiled binary) in headless Chromium: a request through the
// edge appears live, its detail shows headers and bodies, and Replay re-sends it to the upstream.
const HOST = 'inspect.warren.localhost'

const { playwright, skipReason } = await loadBrowser()
if (skipReason) console.warn(`inspector UI e2e SKIPPED: ${skipReason}`)

type Page = import('playwright-core').Page

/** Waits until the element's text contains `text` (runs in the page; no DOM types needed here). */
async function waitText(page: Page, selector: string, text: string): Promise<void> {
  await page.waitForFunction(([sel, t]) => ((globalThis as any).document.querySelector(sel)?.textContent ?? '').includes(t), [selector, text] as const, { timeout: 10_000 })
}

const upstream = startUpstream('inspector-origin')
let edge: Edge | undefined
let agent: AgentProcess | undefined
let web = ''

beforeAll(async () => {
  if (skipReason) return
  edge = await startEdge({ config: 'accounts:\n  - name: alice\n    authtokens: [alice-token]\n    domains: ["*.warren.localhost"]\n' })
  const port = await freePort()
  web = `http://127.0.0.1:${port}`
  agent = startAgent(['http', String(upstream.port), '--url', `http://${HOST}`, ...edgeFlags(edge, 'alice-token', { webAddr: `127.0.0.1:${port}` })])
  await agent.forwarding()
  await agent.waitForLog(/Web Interface/)
})
afterAll(async () => {
  await agent?.stop()
  await edge?.stop()
  upstream.stop(true)
})

describe.skipIf(skipReason !== undefined)('inspector web UI in headless Chromium (compiled binary)', () => {
  test('lists a request live, shows its detail, replays it from the UI, with no console errors', async () => {
    const browser = await playwright!.chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
    const problems: string[] = []
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } })
      page.on('console', (msg) => {
        if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`)
      })
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
      let closing = false
      // The page polls the API every second; a poll in flight when the page closes is aborted, which is fine.
      page.on('requestfailed', (req) => {
        if (!closing) problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`)
      })
      page.on('dialog', (d) => {
        problems.push(`dialog: ${d.message()}`)
        void d.dismiss()
      })

      await page.goto(`${web}/`)
      expect(await page.title()).toBe('warren inspector')
      await waitText(page, '#status', 'online')
      expect(await page.textContent('#status')).toContain(`http://${HOST}`)
      expect(await page.isVisible('#empty')).toBe(true)

      // (1) A request through the edge shows up in the list without a reload.
      const res = await hostFetch(edge!, HOST, '/echo?from=browser', { method: 'POST', body: '{"hello":"inspector"}', headers: { 'content-type': 'application/json', 'x-from-test': 'yes' } })
      expect(res.status).toBe(200)
      await page.waitForSelector('#rows tr[data-id]', { timeout: 10_000 })
      await waitText(page, '#rows tr[data-id]', '200')
      const cells = await page.$$eval('#rows tr[data-id] td', (tds) => tds.map((td) => td.textContent))
      expect(cells.slice(0, 3)).toEqual(['POST', '/echo?from=browser', '200'])
      expect(await page.isHidden('#empty')).toBe(true)
      expect(await page.getAttribute('#rows tr[data-id] td:nth-child(3)', 'class')).toBe('s2')

      // (2) Its detail: request and response headers and the bodies.
      await page.click('#rows tr[data-id]')
      await page.waitForSelector('#replay', { timeout: 10_000 })
      await waitText(page, '#detail', 'Response body')
      expect(await page.getAttribute('#rows tr[data-id]', 'class')).toBe('sel')
      expect(await page.textContent('#detail h2')).toBe('POST /echo?from=browser')
      const headerTables = await page.$$eval('#detail table.headers', (ts) => ts.map((t) => t.textContent ?? ''))
      expect(headerTables).toHaveLength(2)
      expect(headerTables[0]).toContain('POST /echo?from=browser')
      expect(headerTables[0]!.toLowerCase()).toContain('x-from-test')
      expect(headerTables[0]!.toLowerCase()).toContain('application/json')
      expect(headerTables[1]).toContain('200')
      expect(headerTables[1]!.toLowerCase()).toContain('content-type')
      const bodies = await page.$$eval('#detail pre', (ps) => ps.map((p) => p.textContent ?? ''))
      expect(bodies).toHaveLength(2)
      expect(JSON.parse(bodies[0]!)).toEqual({ hello: 'inspector' })
      expect(JSON.parse(bodies[1]!)).toMatchObject({ upstream: 'inspector-origin', method: 'POST', path: '/echo?from=browser', bodyBytes: 21 })
      // The body views switch (JSON pretty-printed by default, hex on demand).
      await page.click('#detail section:nth-of-type(2) .tabs button:text-is("hex")')
      expect(await page.textContent('#detail section:nth-of-type(2) pre')).toContain('7b 22 68 65 6c 6c 6f 22')
      await page.click('#detail section:nth-of-type(2) .tabs button:text-is("json")')

      // (3) Replay from the UI: the upstream sees the request again, and the replay is listed and shown.
      const before = upstream.seen.length
      await page.click('#replay')
      await page.waitForFunction(() => (globalThis as any).document.querySelectorAll('#rows tr[data-id]').length === 2, undefined, { timeout: 10_000 })
      expect(upstream.seen.length).toBe(before + 1)
      expect(upstream.seen.at(-1)).toMatchObject({ method: 'POST', path: '/echo?from=browser', bodyBytes: 21 })
      expect(upstream.seen.at(-1)!.headers['x-from-test']).toBe('yes')
      await waitText(page, '#detail', 'replay of')
      expect(await page.textContent('#rows')).toContain('/echo?from=browser ↻')

      // (5) A screenshot for humans.
      mkdirSync('test-artifacts', { recursive: true })
      await page.screenshot({ path: 'test-artifacts/inspector.png', fullPage: true })
      closing = true
      await page.close()
    } finally {
      await browser.close()
    }
    // (4) No console errors, page errors, failed requests or alerts along the way.
    expect(problems).toEqual([])
  }, 60_000)
})
