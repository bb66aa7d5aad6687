import * as v from 'valibot'
import { log } from '../../lib/log.ts'
import { celContext } from '../context.ts'
import { CONTINUE, defineAction, type BuildEnv, type HttpExchange } from '../types.ts'

/**
 * Compiles a pattern written for ngrok (RE2) as a global JavaScript RegExp. A leading `(?i)`,
 * `(?s)` or `(?m)` group, which RE2 allows and JavaScript does not, becomes a flag.
 * Throws SyntaxError with the pattern in the message.
 */
export function compileRegExp(pattern: string): RegExp {
  let source = pattern
  let flags = 'g'
  const inline = /^\(\?([ims]+)\)/.exec(source)
  if (inline) {
    source = source.slice(inline[0].length)
    for (const f of new Set(inline[1])) flags += f
  }
  try {
    return new RegExp(source, flags)
  } catch (err) {
    throw new SyntaxError(`invalid regular expression "${pattern}": ${(err as Error).message.replace(/^Invalid regular expression: /, '')}`)
  }
}

/** A `from`/`to` pair on URLs, compiled once: constant patterns become RegExps at load. */
export type UrlReplace = (ex: HttpExchange) => { url: string; matches: string[] } | { error: string }

/**
 * Compiles ngrok's URL replacement: `${…}` is interpolated first, then every match of `from` in the
 * whole URL is replaced by `to` (`$1` inserts a capture). Without `from` the whole URL is replaced.
 */
export function compileUrlReplace(from: string | undefined, to: string, env: BuildEnv): UrlReplace {
  const fromTpl = from === undefined ? undefined : env.template(from, ['config', 'from'])
  const toTpl = env.template(to, ['config', 'to'])
  // Constant patterns fail at load; templated ones can only fail per request.
  const fixed = fromTpl?.constant ? compileRegExp(from!) : undefined
  let lastSource: string | undefined
  let lastRe: RegExp | undefined
  return function urlReplace(ex) {
    const context = () => celContext(ex)
    const current = ex.url.href
    const replacement = toTpl.render(context)
    if (!fromTpl) return { url: replacement, matches: [current] }
    let re = fixed
    if (!re) {
      const source = fromTpl.render(context)
      if (source !== lastSource) {
        try {
          lastRe = compileRegExp(source)
        } catch (err) {
          return { error: (err as Error).message }
        }
        lastSource = source
      }
      re = lastRe!
    }
    const matches = Array.from(current.matchAll(re), (m) => m[0])
    if (matches.length === 0) return { url: current, matches }
    const replaced = current.replace(re, replacement)
    return { url: isPath(replacement) ? keepAuthority(replaced, current) : replaced, matches }
  }
}

/** A `to` that is a path (`/x`, not the scheme-relative `//host/x`). */
function isPath(to: string): boolean {
  return to.startsWith('/') && !to.startsWith('//')
}

/**
 * A path `to` keeps the request's scheme and authority. When `from` also matched the authority
 * (`${req.url.authority}/products/…`), the result is `http:///products.php`, which a URL parser
 * reads with `products.php` as the host: the authority goes back in front of the path.
 */
function keepAuthority(replaced: string, current: string): string {
  const lead = current.slice(0, current.indexOf('//') + 2)
  if (!replaced.startsWith(lead + '/')) return replaced
  const authority = current.slice(lead.length, current.indexOf('/', lead.length))
  return lead + authority + replaced.slice(lead.length)
}

/** Resolves a replaced URL against the request's, so relative results and spaces come out as a valid URL. */
export function resolveUrl(text: string, base: URL): URL | undefined {
  try {
    return new URL(text, base)
  } catch {
    return undefined
  }
}

/**
 * Rewrites the URL the upstream receives (path, query; the client's address bar is unchanged).
 * `from` is a regular expression matched against the whole URL including scheme and host.
 */
export const urlRewrite = defineAction({
  type: 'url-rewrite',
  phases: ['on_http_request'],
  terminating: false,
  config: v.strictObject({
    /** Regular expression matched against the whole URL (`http://host:port/path?query`); `${…}` allowed. Omitted: the whole URL is replaced. */
    from: v.optional(v.string()),
    /** Replacement; `$1`, `$2`… insert captures of `from`; `${…}` is interpolated before matching. */
    to: v.string(),
  }),
  build(config, env) {
    const replace = compileUrlReplace(config.from, config.to, env)
    return function urlRewrite(ex) {
      const out = replace(ex)
      if ('error' in out) {
        ex.actions['url_rewrite'] = { url: ex.url.href, matches: [], error: { code: 'invalid_regexp', message: out.error } }
        log.debug('url-rewrite skipped', { error: out.error })
        return CONTINUE
      }
      const next = out.url === ex.url.href ? ex.url : resolveUrl(out.url, ex.url)
      if (!next) {
        const message = `the rewritten URL "${out.url}" is not valid`
        ex.actions['url_rewrite'] = { url: ex.url.href, matches: out.matches, error: { code: 'invalid_url', message } }
        return CONTINUE
      }
      ex.url = next
      ex.actions['url_rewrite'] = { url: next.href, matches: out.matches, error: { code: '', message: '' } }
      return CONTINUE
    }
  },
})
