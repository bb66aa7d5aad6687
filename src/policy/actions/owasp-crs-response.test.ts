import { describe, expect, test } from 'bun:test'
import { exchange, responded, run } from '../../../test/helpers/actions.ts'
import { crsAvailable } from '../crs/modsecurity.ts'

const available = crsAvailable()

describe.skipIf(available !== true)('owasp-crs-response with the Core Rule Set', () => {
  test.each<{ desc: string; body: string; config?: unknown; status: number; rule?: number }>([
    { desc: 'a plain page passes', body: '<html><body>hello</body></html>', config: { process_body: true }, status: 200 },
    { desc: 'a MySQL error leaks', body: '<html>You have an error in your SQL syntax; check the manual</html>', config: { process_body: true }, status: 403, rule: 951230 },
    { desc: 'a PHP error leaks', body: '<b>Warning</b>: include(): Failed opening \'x.php\' for inclusion (include_path=\'.:/usr/share/php\') in <b>/var/www/a.php</b> on line <b>3</b>', config: { process_body: true }, status: 403 },
    { desc: 'bodies are not read by default', body: '<html>You have an error in your SQL syntax; check the manual</html>', status: 200 },
    { desc: 'on_error continue keeps the answer', body: '<html>You have an error in your SQL syntax; check the manual</html>', config: { process_body: true, on_error: 'continue' }, status: 200, rule: 951230 },
  ])('$desc', async ({ body, config, status, rule }) => {
    const ex = exchange('http://a.test/page', { headersInit: { 'user-agent': 'curl/8.0', accept: '*/*' } })
    ex.response = { status: 200, headers: new Headers({ 'content-type': 'text/html' }), body: new Response(body).body }
    const outcome = await run({ type: 'owasp-crs-response', phase: 'on_http_response', config: config ?? {} }, ex)
    const result = ex.actions['owasp_crs_response'] as { decision: string; matched_rule_ids: bigint[] }
    if (rule) expect(result.matched_rule_ids).toContain(BigInt(rule))
    if (status === 200) {
      expect(outcome.kind).toBe('continue')
      expect(await new Response(ex.response.body).text()).toBe(body)
      return
    }
    expect(result.decision).toBe('block')
    expect(responded(outcome)?.status).toBe(403)
  })
})
