import * as v from 'valibot'
import { sized } from '../../proxy/errors.ts'
import { celContext } from '../context.ts'
import { CONTINUE, defineAction } from '../types.ts'
import { compileUrlReplace, resolveUrl } from './url-rewrite.ts'

/**
 * Answers with a 3xx whose `Location` is the request URL with `from` replaced by `to` (as in
 * url-rewrite). When nothing matches, or the result equals the request URL, the request continues.
 */
export const redirect = defineAction({
  type: 'redirect',
  phases: ['on_http_request'],
  // ngrok lists redirect as non-terminating: it may decide not to redirect.
  terminating: false,
  config: v.strictObject({
    /** Regular expression matched against the whole URL (`http://host:port/path?query`); `${…}` allowed. Omitted: the whole URL is replaced by `to`. */
    from: v.optional(v.string()),
    /** Replacement; `$1`, `$2`… insert captures of `from`; `${…}` is interpolated before matching. */
    to: v.string(),
    /** Redirect status, 300-399; default 302. */
    status_code: v.optional(v.pipe(v.number(), v.integer(), v.minValue(300), v.maxValue(399)), 302),
    /** Extra response headers; values are templates. */
    headers: v.optional(v.record(v.string(), v.string()), {}),
  }),
  build(config, env) {
    const replace = compileUrlReplace(config.from, config.to, env)
    const headers = Object.entries(config.headers).map(([name, value]) => [name, env.template(value, ['config', 'headers', name])] as const)
    const status = config.status_code
    return function redirect(ex) {
      const out = replace(ex)
      if ('error' in out) {
        ex.actions['redirect'] = { url: '', matches: [], error: { code: 'invalid_regexp', message: out.error } }
        return CONTINUE
      }
      if (out.url === ex.url.href) return CONTINUE
      const target = resolveUrl(out.url, ex.url)
      if (!target) {
        ex.actions['redirect'] = { url: '', matches: out.matches, error: { code: 'invalid_url', message: `the redirect URL "${out.url}" is not valid` } }
        return CONTINUE
      }
      if (target.href === ex.url.href) return CONTINUE
      ex.actions['redirect'] = { url: target.href, matches: out.matches, error: { code: '', message: '' } }
      const context = () => celContext(ex)
      const res = new Headers()
      for (const [name, tpl] of headers) res.set(name, tpl.render(context))
      res.set('location', target.href)
      return { kind: 'respond', response: sized('', status, res) }
    }
  },
})
