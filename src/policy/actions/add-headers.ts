import * as v from 'valibot'
import { appendLine } from '../../lib/header-lines.ts'
import type { Template } from '../interpolate.ts'
import { CONTINUE, defineAction } from '../types.ts'

/** RFC 9110 token: what a header name may contain. */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** Header values from templates may carry anything; CR, LF and NUL would make Headers throw. */
export function headerValue(text: string): string {
  // Most values have none and nothing to trim: a byte loop finds that for less than a regex and
  // `trim` (a visible share of a relayed policy).
  const n = text.length
  if (n === 0) return text
  let clean = text.charCodeAt(0) > 32 && text.charCodeAt(n - 1) > 32
  for (let i = 0; clean && i < n; i++) {
    const c = text.charCodeAt(i)
    clean = c !== 13 && c !== 10 && c !== 0 && c < 127
  }
  return clean ? text : text.replace(/[\r\n\0]+/g, ' ').trim()
}

/**
 * Adds headers to the request (on_http_request) or the response (on_http_response). A header that
 * is already there gets another value, except `host`, which is replaced: the upstream then sees that
 * Host, and the data path rewrites `Location` headers naming it back to the public host.
 */
export const addHeaders = defineAction({
  type: 'add-headers',
  phases: ['on_http_request', 'on_http_response'],
  terminating: false,
  changes: 'headers',
  config: v.strictObject({
    /** Header name → value; values are templates (`${conn.client_ip}`). At least one. */
    headers: v.pipe(
      v.record(v.pipe(v.string(), v.regex(HEADER_NAME, 'is not a valid header name')), v.string()),
      v.check((h) => Object.keys(h).length > 0, 'needs at least one header'),
    ),
  }),
  build(config, env) {
    // A value without `${…}` is cleaned once here; the others per request. Parallel lists and an
    // indexed loop: this runs for every request the rule matches (no iterator, no pair per header).
    const names: string[] = []
    const constants: (string | undefined)[] = []
    const templates: (Template | undefined)[] = []
    for (const [name, value] of Object.entries(config.headers)) {
      const tpl = env.template(value, ['config', 'headers', name])
      names.push(name.toLowerCase())
      constants.push(tpl.constant ? headerValue(tpl.render(() => ({}))) : undefined)
      templates.push(tpl.constant ? undefined : tpl)
    }
    const response = env.phase === 'on_http_response'
    // `actions.ngrok.add_headers.headers_added`, built only where the policy can read it.
    const record = env.readsActionResults !== false
    return function addHeaders(ex) {
      const target = response ? ex.response?.headers : ex.headers
      if (!target) return CONTINUE
      const added: Record<string, string> | undefined = record ? {} : undefined
      // Variables cached from the request's headers are forgotten after this action (engine.ts), not between its headers.
      for (let k = 0; k < names.length; k++) {
        const name = names[k]!
        const value = constants[k] ?? headerValue(templates[k]!.renderFor(ex))
        if (name === 'host' && !response) target.set(name, value)
        else appendLine(target, name, value)
        if (added) added[name] = value
      }
      if (added) ex.actions['add_headers'] = { headers_added: added }
      return CONTINUE
    }
  },
})
