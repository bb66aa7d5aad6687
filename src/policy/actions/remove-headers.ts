import * as v from 'valibot'
import { CONTINUE, defineAction } from '../types.ts'
import { HEADER_NAME } from './add-headers.ts'

/** Removes headers from the request (on_http_request) or the response (on_http_response). */
export const removeHeaders = defineAction({
  type: 'remove-headers',
  phases: ['on_http_request', 'on_http_response'],
  terminating: false,
  changes: 'headers',
  config: v.strictObject({
    /** Header names to remove (case-insensitive). At least one. */
    headers: v.pipe(v.array(v.pipe(v.string(), v.regex(HEADER_NAME, 'is not a valid header name'))), v.minLength(1, 'needs at least one header')),
  }),
  build(config, env) {
    const names = [...new Set(config.headers.map((h) => h.toLowerCase()))]
    const response = env.phase === 'on_http_response'
    if (!response && names.includes('host')) throw new Error('the request must keep its host header; use add-headers to replace it')
    return function removeHeaders(ex) {
      const target = response ? ex.response?.headers : ex.headers
      if (!target) return CONTINUE
      const removed: string[] = []
      for (const name of names) {
        if (!target.has(name)) continue
        target.delete(name)
        removed.push(name)
      }
      ex.actions['remove_headers'] = { headers_removed: removed }
      return CONTINUE
    }
  },
})
