/**
 * owasp-crs-request and owasp-crs-response through the compiled edge: libmodsecurity with Debian's
 * OWASP Core Rule Set, driven by bun:ffi from the binary. Skips (saying so) where the packages are
 * missing; scripts/test installs them.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { curl } from './framework/curl.ts'
import { hostFetch, startEdge, type Edge } from './framework/process.ts'

const installed = existsSync('/usr/share/modsecurity-crs/rules') && Bun.spawnSync(['sh', '-c', 'ldconfig -p | grep -q libmodsecurity.so.3']).exitCode === 0
if (!installed) console.warn('skipping owasp-crs e2e: libmodsecurity3 / modsecurity-crs are not installed (scripts/test installs them)')

const upstream = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req) {
    const url = new URL(req.url)
    if (url.pathname === '/leak') return new Response('<html>You have an error in your SQL syntax; check the manual that corresponds to your MySQL server</html>', { headers: { 'content-type': 'text/html' } })
    return new Response(`<html>ok ${req.method} ${url.pathname} ${(await req.text()).length}</html>`, { headers: { 'content-type': 'text/html' } })
  },
})

let edge: Edge
beforeAll(async () => {
  if (!installed) return
  const forward = { type: 'forward-external', config: { url: `http://127.0.0.1:${upstream.port}` } }
  edge = await startEdge({
    policies: {
      'waf.yml': JSON.stringify({
        url: 'http://waf.warren.localhost',
        traffic_policy: {
          on_http_request: [{ actions: [{ type: 'owasp-crs-request', config: { process_body: true } }, forward] }],
          on_http_response: [{ actions: [{ type: 'owasp-crs-response', config: { process_body: true } }] }],
        },
      }),
      'dry.yml': JSON.stringify({
        url: 'http://waf-dry.warren.localhost',
        traffic_policy: {
          on_http_request: [
            { actions: [{ type: 'owasp-crs-request', config: { on_error: 'continue' } }] },
            { actions: [{ type: 'custom-response', config: { body: '${actions.ngrok.owasp_crs_request.decision} ${actions.ngrok.owasp_crs_request.anomaly_score}' } }] },
          ],
        },
      }),
    },
  })
})
afterAll(async () => {
  await edge?.stop()
  upstream.stop(true)
})

describe.skipIf(!installed)('owasp-crs through the edge', () => {
  test('a plain request passes; SQL injection and XSS get 403 (curl)', async () => {
    const ok = await curl(['-H', 'Host: waf.warren.localhost', `${edge.base}/products?id=42`])
    expect(ok.status).toBe(200)
    expect(ok.body).toBe('<html>ok GET /products 0</html>')
    const sqli = await curl(['-H', 'Host: waf.warren.localhost', `${edge.base}/products?id=1%27%20OR%20%271%27=%271`])
    expect(sqli.status).toBe(403)
    expect(sqli.headers['warren-error-code']).toBe('ERR_WARREN_2134')
    const xss = await curl(['-H', 'Host: waf.warren.localhost', `${edge.base}/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E`])
    expect(xss.status).toBe(403)
  })

  test('process_body: an attack in a form body gets 403, a clean body reaches the upstream', async () => {
    const bad = await curl(['-H', 'Host: waf.warren.localhost', '--data', "user=admin&pass=' OR 1=1 --", `${edge.base}/login`])
    expect(bad.status).toBe(403)
    const good = await curl(['-H', 'Host: waf.warren.localhost', '--data', 'user=admin&pass=hunter2', `${edge.base}/login`])
    expect(good.status).toBe(200)
    expect(good.body).toBe('<html>ok POST /login 23</html>')
  })

  test('a response leaking a SQL error is replaced by 403', async () => {
    const res = await hostFetch(edge, 'waf.warren.localhost', '/leak')
    expect(res.status).toBe(403)
    expect(res.headers.get('warren-error-code')).toBe('ERR_WARREN_2134')
    expect(await res.text()).not.toContain('SQL syntax')
  })

  test('on_error continue: the decision and score are result variables', async () => {
    const res = await hostFetch(edge, 'waf-dry.warren.localhost', '/?id=1%27%20OR%20%271%27=%271')
    expect(res.status).toBe(200)
    expect(await res.text()).toMatch(/^block [5-9]\d*$/)
    expect(await (await hostFetch(edge, 'waf-dry.warren.localhost', '/?id=1')).text()).toBe('allow 0')
  })

  test('no rule match is printed to the edge output by libmodsecurity itself', () => {
    expect(edge.logs()).not.toContain('Server log callback is not set')
  })
})
