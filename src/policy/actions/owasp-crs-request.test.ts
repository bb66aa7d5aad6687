import { describe, expect, test } from 'bun:test'
import { exchange, loadError, responded, run } from '../../../test/helpers/actions.ts'
import { crsAvailable } from '../crs/modsecurity.ts'

const available = crsAvailable()
if (available !== true) console.warn(`skipping the OWASP CRS tests: ${available}`)

describe('owasp-crs-request config', () => {
  test.each<{ desc: string; config: unknown; want: RegExp | undefined }>([
    { desc: 'defaults', config: {}, want: undefined },
    { desc: 'all fields', config: { on_error: 'continue', process_body: true, exclude_rule_ids: [942100] }, want: undefined },
    { desc: 'bad on_error', config: { on_error: 'ignore' }, want: /on_error/ },
    { desc: 'rule id out of range', config: { exclude_rule_ids: [100] }, want: /exclude_rule_ids/ },
    { desc: 'unknown key', config: { paranoia_level: 2 }, want: /paranoia_level/ },
  ])('$desc', ({ config, want }) => {
    if (available !== true) return
    const got = loadError({ type: 'owasp-crs-request', config })
    if (want) expect(got).toMatch(want)
    else expect(got).toBeUndefined()
  })
})

describe.skipIf(available !== true)('owasp-crs-request with the Core Rule Set', () => {
  const ua = { 'user-agent': 'curl/8.0', accept: '*/*' }
  test.each<{ desc: string; url: string; config?: unknown; blocked: boolean; rule?: number }>([
    { desc: 'a plain request passes', url: 'http://a.test/products?id=42&sort=asc', blocked: false },
    { desc: 'SQL injection in the query', url: "http://a.test/?id=1'%20OR%20'1'='1", blocked: true, rule: 942100 },
    { desc: 'XSS in the query', url: 'http://a.test/?q=%3Cscript%3Ealert(1)%3C/script%3E', blocked: true, rule: 941100 },
    { desc: 'path traversal', url: 'http://a.test/?file=../../../../etc/passwd', blocked: true, rule: 930100 },
    { desc: 'on_error continue records but lets it through', url: "http://a.test/?id=1'%20OR%20'1'='1", config: { on_error: 'continue' }, blocked: false, rule: 942100 },
  ])('$desc', async ({ url, config, blocked, rule }) => {
    const ex = exchange(url, { headersInit: ua })
    const outcome = await run({ type: 'owasp-crs-request', config: config ?? {} }, ex)
    const result = ex.actions['owasp_crs_request'] as { decision: string; anomaly_score: bigint; matched_rule_ids: bigint[] }
    if (rule) expect(result.matched_rule_ids).toContain(BigInt(rule))
    if (!blocked) {
      expect(outcome.kind).toBe('continue')
      if (!rule) expect(result).toEqual({ decision: 'allow', anomaly_score: 0n, matched_rule_ids: [] })
      return
    }
    expect(result.decision).toBe('block')
    expect(result.anomaly_score).toBeGreaterThanOrEqual(5n)
    const res = responded(outcome)!
    expect(res.status).toBe(403)
    expect(res.headers.get('warren-error-code')).toBe('ERR_WARREN_2134')
  })

  test('exclude_rule_ids leaves those rules out', async () => {
    const ex = exchange("http://a.test/?id=1'%20OR%20'1'='1", { headersInit: ua })
    await run({ type: 'owasp-crs-request', config: { exclude_rule_ids: [942100], on_error: 'continue' } }, ex)
    expect((ex.actions['owasp_crs_request'] as { matched_rule_ids: bigint[] }).matched_rule_ids).not.toContain(942100n)
  })

  test('process_body checks the first 4 KB of a form body and passes the body on whole', async () => {
    const attack = "user=admin&pass=' OR 1=1 --"
    const post = (config: unknown, text: string) => {
      const ex = exchange('http://a.test/login', { method: 'POST', body: new Response(text).body, headersInit: { ...ua, 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(text.length) } })
      return run({ type: 'owasp-crs-request', config }, ex).then((outcome) => ({ ex, outcome }))
    }
    expect((await post({}, attack)).outcome.kind).toBe('continue') // bodies are not read by default
    expect(responded((await post({ process_body: true }, attack)).outcome)?.status).toBe(403)
    const late = `pad=${'a'.repeat(5000)}&${attack}`
    const { ex, outcome } = await post({ process_body: true }, late)
    expect(outcome.kind).toBe('continue') // past the first 4 KB
    expect(await new Response(ex.body).text()).toBe(late)
  })
})

test('without libmodsecurity the policy is refused with ERR_WARREN_2133', () => {
  // The library path is read once per process, so the check runs in a child with another path.
  const script = `import { loadError } from ${JSON.stringify(`${import.meta.dir}/../../../test/helpers/actions.ts`)}; console.log(loadError({ type: 'owasp-crs-request', config: {} }))`
  const child = Bun.spawnSync([process.execPath, '-e', script], { env: { ...process.env, WARREN_MODSECURITY_LIB: '/nonexistent/libmodsecurity.so.3' } })
  expect(child.stdout.toString()).toMatch(/^ERR_WARREN_2133: .*libmodsecurity could not be loaded .*install Debian's libmodsecurity3/)
})
