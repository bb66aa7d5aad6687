import * as v from 'valibot'
import { log } from '../../lib/log.ts'
import { celContext } from '../context.ts'
import { CONTINUE, defineAction } from '../types.ts'
import { compileReplacements, ReplacementsSpec, rewriteBody, skipReason, type Matched } from './request-body-find-replace.ts'

/**
 * Finds and replaces text in the response body with regular expressions, rule after rule. Text
 * bodies up to 1 MiB are rewritten whole with a corrected Content-Length; larger or chunked ones as
 * they stream. Encoded (compressed) and binary bodies pass unchanged: put compress-response after it.
 */
export const responseBodyFindReplace = defineAction({
  type: 'response-body-find-replace',
  phases: ['on_http_response'],
  terminating: false,
  config: v.strictObject({
    /** Rules applied in order, each to the result of the one before. At least one. */
    replacements: ReplacementsSpec,
  }),
  build(config, env) {
    const replacements = compileReplacements(config.replacements, env)
    return async function responseBodyFindReplace(ex) {
      const found: Matched[] = []
      ex.actions['response_body_find_replace'] = { replacements: found }
      const res = ex.response
      if (!res?.body || ex.method === 'HEAD') return CONTINUE
      const skip = skipReason(res.headers)
      if (skip) {
        log.debug('response-body-find-replace skipped', { reason: skip })
        return CONTINUE
      }
      const rules = replacements(() => celContext(ex))
      if ('error' in rules) {
        log.debug('response-body-find-replace skipped', { reason: rules.error })
        return CONTINUE
      }
      res.body = await rewriteBody(res.body, res.headers, rules, found)
      return CONTINUE
    }
  },
})
