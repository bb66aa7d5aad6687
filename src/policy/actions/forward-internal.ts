import * as v from 'valibot'
import { parseEndpointUrl, type Scheme } from '../../config/url.ts'
import { CODES, WarrenError } from '../../lib/errors.ts'
import { errorResponse } from '../../proxy/errors.ts'
import { celContext } from '../context.ts'
import { CONTINUE, defineAction, type HttpExchange, type Outcome, type RoutingError } from '../types.ts'

const HTTP: readonly Scheme[] = ['http', 'https']

/** Which target schemes an endpoint of `scheme` may forward to: the same protocol only. */
function compatible(scheme: Scheme): readonly Scheme[] {
  return scheme === 'http' || scheme === 'https' ? HTTP : [scheme]
}

/** Parses and checks a forward-internal URL; the error text is what the policy author sees. */
function parseTarget(text: string, from: Scheme): URL | string {
  let parsed
  try {
    parsed = parseEndpointUrl(text)
  } catch (err) {
    return err instanceof WarrenError ? err.message : String(err)
  }
  if (parsed.binding !== 'internal') return `"${text}" is not an internal endpoint URL (its host must end in ".internal")`
  if (parsed.wildcard) return `"${text}": forward to a concrete hostname, not a wildcard`
  if (!compatible(from).includes(parsed.scheme)) return `a ${from}:// endpoint can only forward to ${compatible(from).join('/')}:// internal endpoints, not ${parsed.scheme}://`
  return new URL(`${parsed.scheme}://${parsed.host}${parsed.port === undefined ? '' : `:${parsed.port}`}`)
}

/** HTTP status for a failed forward: the target is missing (404, like ngrok's offline endpoint) or loops (508). */
function statusOf(error: RoutingError): number {
  return error.code === CODES.FORWARD_LOOP ? 508 : 404
}

/**
 * Hands the request to an internal endpoint (`https://api.internal`) of the same account and
 * protocol. The target's own on_http_request and on_http_response run; its upstream sees the public
 * Host and X-Forwarded-*. A missing target, a loop or a chain deeper than 8 is an error: `on_error:
 * halt` (default) answers it, `continue` sets the result variables and runs the next action.
 */
export const forwardInternal = defineAction({
  type: 'forward-internal',
  phases: ['on_tcp_connect', 'on_http_request'],
  terminating: (config) => config.on_error !== 'continue',
  config: v.strictObject({
    /** Internal endpoint URL, e.g. `https://api.internal` or `http://api.internal:8080`; `${…}` allowed. */
    url: v.string(),
    /** `halt` (default): a failed forward answers with its error. `continue`: the policy goes on. */
    on_error: v.optional(v.picklist(['halt', 'continue']), 'halt'),
  }),
  build(config, env) {
    if (env.phase === 'on_tcp_connect' && (env.scheme === 'http' || env.scheme === 'https'))
      throw new Error('on http(s) endpoints forward-internal runs in on_http_request')
    const tpl = env.template(config.url, ['config', 'url'])
    const fixed = tpl.constant ? parseTarget(config.url, env.scheme) : undefined
    if (typeof fixed === 'string') throw new Error(fixed)
    const halt = config.on_error === 'halt'
    const tcp = env.phase === 'on_tcp_connect'

    function fail(ex: HttpExchange, url: string, error: RoutingError): Outcome {
      if (!halt) {
        ex.actions['forward_internal'] = { url, error: { code: error.code, message: error.message } }
        return CONTINUE
      }
      if (tcp) return { kind: 'close' }
      return { kind: 'respond', response: errorResponse(statusOf(error), error.code, error.message, ex.headers.get('accept')) }
    }

    return function forwardInternal(ex) {
      let url = fixed
      if (!url) {
        const text = tpl.render(() => celContext(ex))
        const parsed = parseTarget(text, ex.endpoint.scheme)
        if (typeof parsed === 'string') return fail(ex, text, { code: CODES.ENDPOINT_NOT_FOUND, message: parsed })
        url = parsed
      }
      const target = url.href.replace(/\/$/, '')
      if (!ex.routing) return fail(ex, target, { code: CODES.ENDPOINT_NOT_FOUND, message: `internal endpoints cannot be reached from here (${target})` })
      const found = ex.routing.resolveInternal(url)
      if ('error' in found) return fail(ex, target, found.error)
      return { kind: 'forward', target: { kind: 'internal', url, endpoint: found.endpoint } }
    }
  },
})
