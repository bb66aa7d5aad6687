import { CHROMIUM, loadBrowser } from './framework/chromium.ts'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { curl } from './framework/curl.ts'
import { startEdge, type Edge } from './framework/process.ts'

// The dashboard of the compiled binary in headless Chromium: it loads without console errors and
// shows the edge's endpoints, certificates and live events.
const KEY = 'e2e-dashboard-key'

const { playwright, skipReason } = await loadBrowser()
if (skipReason) console.warn(`dashboard e2e SKIPPED: ${skipReason}`)

let edge: Edge | undefined

type Page = import('playwright-core').Page

/** Waits until the element's text contains `text` (runs in the page; no DOM types needed here). */
async function waitText(page: Page, selector: string, text: string): Promise<void> {
  await page.waitForFunction(([sel, t]) => ((globalThis as any).document.querySelector(sel)?.textContent ?? '').includes(t), [selector, text] as const, { timeout: 10_000 })
}

beforeAll(async () => {
  if (skipReason) return
  edge = await startEdge({
    config: `api_keys: [${KEY}]\n`,
    policies: {
      'shop.yml': 'url: http://shop.warren.localhost\ndescription: the shop front\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response, config: {body: shop}}]\n',
      'secure.yml': 'url: https://secure-dash.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response, config: {body: ok}}]\n',
    },
  })
  // A dev certificate to list: the first https request issues it.
  const host = 'secure-dash.warren.localhost'
  await curl(['--cacert', edge.caPath, '--resolve', `${host}:${edge.httpsPort}:127.0.0.1`, `https://${host}:${edge.httpsPort}/`])
})
afterAll(async () => {
  await edge?.stop()
})

describe.skipIf(skipReason !== undefined)('dashboard in headless Chromium (compiled binary)', () => {
  test('loads with no console errors, shows endpoints and certificates, and streams live events', async () => {
    const browser = await playwright!.chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
    const problems: string[] = []
    try {
      const page = await browser.newPage()
      page.on('console', (msg) => {
        if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`)
      })
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
      page.on('requestfailed', (req) => {
        // The live stream is aborted when the page closes; anything else failing is a problem.
        if (!req.url().includes('/events/stream')) problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`)
      })

      // Without a key the page asks for one.
      await page.goto(`http://127.0.0.1:${edge!.apiPort}/`)
      await page.waitForSelector('#login:not([hidden])')
      await page.fill('#key', KEY)
      await page.click('#login button[type=submit]')

      await waitText(page, '#endpoints', 'http://shop.warren.localhost')
      const endpoints = await page.textContent('#endpoints')
      expect(endpoints).toContain('http://shop.warren.localhost')
      expect(endpoints).toContain('the shop front')
      expect(endpoints).toContain('https://secure-dash.warren.localhost')
      expect(await page.textContent('#status')).toContain('ready')
      await waitText(page, '#certificates', 'secure-dash.warren.localhost')
      expect(await page.textContent('#sessions')).toContain('No agents connected')

      // Live events: a request through the edge shows up without a reload.
      await waitText(page, '#events-state', 'live')
      expect((await curl(['-H', 'Host: shop.warren.localhost', `${edge!.base}/from-the-test`])).body).toBe('shop')
      await waitText(page, '#events', '/from-the-test')
      expect(await page.textContent('#events')).toContain('http_request_complete.v0')

      // A filter applies to what follows.
      await page.fill('#filter', 'ev.http.request.url.path == "/only-this"')
      await page.click('#filter-form button[type=submit]')
      await waitText(page, '#events-state', 'live · filtered')
      await curl(['-H', 'Host: shop.warren.localhost', `${edge!.base}/not-this`])
      await curl(['-H', 'Host: shop.warren.localhost', `${edge!.base}/only-this`])
      await waitText(page, '#events', '/only-this')
      expect(await page.textContent('#events')).not.toContain('/not-this')

      // The key is never put in the page's address or storage beyond this tab's session.
      expect(page.url()).not.toContain(KEY)
      await page.close()
    } finally {
      await browser.close()
    }
    expect(problems).toEqual([])
  }, 60_000)

  test('a key in the fragment opens the dashboard directly and is removed from the address', async () => {
    const browser = await playwright!.chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'] })
    try {
      const page = await browser.newPage()
      const errors: string[] = []
      page.on('pageerror', (err) => errors.push(err.message))
      await page.goto(`http://127.0.0.1:${edge!.apiPort}/ui#key=${KEY}`)
      await waitText(page, '#endpoints', 'http://shop.warren.localhost')
      expect(page.url()).toBe(`http://127.0.0.1:${edge!.apiPort}/ui`)
      expect(errors).toEqual([])
    } finally {
      await browser.close()
    }
  }, 60_000)
})
