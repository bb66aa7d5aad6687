import * as v from 'valibot'
import { CODES } from '../../lib/errors.ts'
import { log } from '../../lib/log.ts'
import { errorResponse } from '../../proxy/errors.ts'
import { crsRuleSet, runCrs, type CrsRequest, type CrsVerdict } from '../crs/modsecurity.ts'
import { takeBody } from '../take-body.ts'
import { CONTINUE, defineAction, type HttpExchange, type Outcome } from '../types.ts'

/** The body bytes the rules see when `process_body` is on (ngrok: the first 4 KB; the rest is not checked). */
export const CRS_BODY_BYTES = 4096

/** The config both OWASP CRS actions take (ngrok's fields). */
export const CrsConfig = v.strictObject({
  /** `halt` (default): a blocked request/response gets 403 and the phase ends. `continue`: only the result variables record the decision. */
  on_error: v.optional(v.picklist(['halt', 'continue']), 'halt'),
  /** Check the first 4 KB of the body too. Default false. */
  process_body: v.optional(v.boolean(), false),
  /** CRS rule ids (900000-999999) to leave out, e.g. for false positives. */
  exclude_rule_ids: v.optional(v.array(v.pipe(v.number(), v.integer(), v.minValue(900000), v.maxValue(999999))), []),
})

/** The request as the engine sees it; `body` only when the rules read bodies. */
export function crsRequest(ex: HttpExchange, body?: Buffer): CrsRequest {
  return {
    method: ex.method,
    uri: ex.url.pathname + ex.url.search,
    httpVersion: (ex.httpVersion ?? 'HTTP/1.1').replace(/^HTTP\//, ''),
    headers: ex.headers,
    clientIp: ex.conn.clientIp,
    clientPort: ex.conn.clientPort,
    serverIp: ex.conn.serverIp,
    serverPort: ex.conn.serverPort,
    ...(body ? { body } : {}),
  }
}

/** Bodies in a content coding are not checked: the rules would read compressed bytes. */
export function checkable(headers: Headers): boolean {
  const coding = headers.get('content-encoding')
  return !coding || coding.trim().toLowerCase() === 'identity'
}

/** Records the verdict as `actions.ngrok.<name>` and answers 403 when it blocks and `on_error` is halt. */
export function crsOutcome(ex: HttpExchange, name: string, verdict: CrsVerdict, halt: boolean): Outcome {
  ex.actions[name] = { decision: verdict.blocked ? 'block' : 'allow', anomaly_score: BigInt(verdict.score), matched_rule_ids: verdict.matched.map(BigInt) }
  if (!verdict.blocked) return CONTINUE
  log.info('owasp-crs blocked', { code: CODES.CRS_BLOCKED, action: name, score: verdict.score, rules: verdict.matched })
  if (!halt) return CONTINUE
  return { kind: 'respond', response: errorResponse(403, CODES.CRS_BLOCKED, 'The request was blocked by the web application firewall.', ex.headers.get('accept')) }
}

/**
 * The OWASP Core Rule Set (paranoia level 1, inbound anomaly threshold 5) over the request line,
 * headers and, with `process_body`, the first 4 KB of the body, run by libmodsecurity. A request
 * that scores 5 or more gets 403 (`on_error: continue`: only the result variables say so).
 */
export const owaspCrsRequest = defineAction({
  type: 'owasp-crs-request',
  phases: ['on_http_request'],
  terminating: false,
  config: CrsConfig,
  build(config) {
    const rules = crsRuleSet({ phase: 'request', excludeRuleIds: config.exclude_rule_ids })
    const halt = config.on_error === 'halt'
    return async function owaspCrsRequest(ex) {
      let body: Buffer | undefined
      if (config.process_body && ex.body && checkable(ex.headers)) {
        const taken = await takeBody(ex.body, CRS_BODY_BYTES)
        ex.body = taken.body
        body = taken.bytes.subarray(0, CRS_BODY_BYTES)
      }
      return crsOutcome(ex, 'owasp_crs_request', runCrs(rules, crsRequest(ex, body)), halt)
    }
  },
})
