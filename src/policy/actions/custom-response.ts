import * as v from 'valibot'
import { sized } from '../../proxy/errors.ts'
import { celContext } from '../context.ts'
import { defineAction } from '../types.ts'

/**
 * Answers the request from the edge without contacting any upstream. `body` and header values are
 * templates (`${req.url.path}`). ngrok's older `content` field is accepted as a synonym of `body`.
 */
export const customResponse = defineAction({
  type: 'custom-response',
  phases: ['on_http_request', 'on_http_response'],
  terminating: true,
  config: v.strictObject({
    /** HTTP status code of the response (200-599: a final status the edge can send itself). */
    status_code: v.optional(v.pipe(v.number(), v.integer(), v.minValue(200), v.maxValue(599)), 200),
    /** Response body; `${…}` is interpolated per request. */
    body: v.optional(v.string()),
    /** Legacy name of `body`. */
    content: v.optional(v.string()),
    /** Response headers; values are templates. */
    headers: v.optional(v.record(v.string(), v.string()), {}),
  }),
  build(config, env) {
    const body = env.template(config.body ?? config.content ?? '', ['config', 'body'])
    const headers = Object.entries(config.headers).map(
      ([name, value]) => [name, env.template(value, ['config', 'headers', name])] as const,
    )
    const status = config.status_code
    return function customResponse(ex) {
      const context = () => celContext(ex)
      const out = new Headers()
      for (const [name, tpl] of headers) out.set(name, tpl.render(context))
      const text = body.render(context)
      if (text !== '' && !out.has('content-type')) out.set('content-type', 'text/plain; charset=utf-8')
      return { kind: 'respond', response: sized(text, status, out) }
    }
  },
})
