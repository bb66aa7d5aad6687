import * as v from 'valibot'
import { CODES, ERROR_CODE_HEADER } from '../../lib/errors.ts'
import { sized } from '../../proxy/errors.ts'
import { defineAction } from '../types.ts'

/**
 * Refuses the request before any upstream sees it: an empty answer with `status_code` in
 * on_http_request, a closed connection in on_tcp_connect.
 */
export const deny = defineAction({
  type: 'deny',
  phases: ['on_tcp_connect', 'on_http_request'],
  terminating: true,
  config: v.strictObject({
    /** Status of the (bodyless) answer, 200-599; default 403. Only for on_http_request: on_tcp_connect closes the connection. */
    status_code: v.optional(v.pipe(v.number(), v.integer(), v.minValue(200), v.maxValue(599))),
  }),
  build(config, env) {
    if (env.phase === 'on_tcp_connect') {
      if (config.status_code !== undefined) throw new Error('status_code has no effect in on_tcp_connect, where deny closes the connection')
      return function deny() {
        return { kind: 'close' }
      }
    }
    const status = config.status_code ?? 403
    return function deny() {
      const headers = new Headers({ [ERROR_CODE_HEADER]: CODES.POLICY_DENIED, 'cache-control': 'no-store' })
      return { kind: 'respond', response: sized('', status, headers) }
    }
  },
})
