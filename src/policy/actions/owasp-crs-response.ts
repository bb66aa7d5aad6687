import { crsRuleSet, runCrs } from '../crs/modsecurity.ts'
import { takeBody } from '../take-body.ts'
import { defineAction } from '../types.ts'
import { checkable, CRS_BODY_BYTES, CrsConfig, crsOutcome, crsRequest } from './owasp-crs-request.ts'

/**
 * The OWASP Core Rule Set's response rules (data leakage: SQL, Java, PHP, IIS errors; paranoia level
 * 1, outbound anomaly threshold 4) over the upstream's status, headers and, with `process_body`, the
 * first 4 KB of its body, run by libmodsecurity. A response that scores 4 or more is replaced by 403.
 */
export const owaspCrsResponse = defineAction({
  type: 'owasp-crs-response',
  phases: ['on_http_response'],
  terminating: false,
  config: CrsConfig,
  build(config) {
    const rules = crsRuleSet({ phase: 'response', excludeRuleIds: config.exclude_rule_ids })
    const halt = config.on_error === 'halt'
    return async function owaspCrsResponse(ex) {
      const res = ex.response
      if (!res) return crsOutcome(ex, 'owasp_crs_response', { blocked: false, score: 0, matched: [] }, halt)
      let body: Buffer | undefined
      if (config.process_body && res.body && checkable(res.headers)) {
        const taken = await takeBody(res.body, CRS_BODY_BYTES)
        res.body = taken.body
        body = taken.bytes.subarray(0, CRS_BODY_BYTES)
      }
      const verdict = runCrs(rules, crsRequest(ex), { status: res.status, headers: res.headers, ...(body ? { body } : {}) })
      const outcome = crsOutcome(ex, 'owasp_crs_response', verdict, halt)
      if (outcome.kind === 'respond') void res.body?.cancel()
      return outcome
    }
  },
})
