import { randomUUID } from 'node:crypto'
import * as v from 'valibot'
import { parseDuration } from '../../lib/duration.ts'
import { CODES } from '../../lib/errors.ts'
import { errorResponse } from '../../proxy/errors.ts'
import { celContext } from '../context.ts'
import type { CelProgram } from '../expr/compile.ts'
import { CONTINUE, defineAction, type HttpExchange } from '../types.ts'
import { HEADER_NAME, headerValue } from './add-headers.ts'

/** Largest response body kept (ngrok's limit); a bigger one fails the attempt. */
export const MAX_RESPONSE_BYTES = 256 * 1024
/** Retries after the first attempt when `retry_condition` holds. */
export const MAX_RETRIES = 3

const METHODS = ['GET', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS'] as const

function headerLists(headers: Headers): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  headers.forEach((value, name) => (out[name] ??= []).push(value))
  return out
}

/**
 * `retry_condition` reads `attempts` and `last_attempt`, which are not policy variables: they are
 * renamed to `actions.ngrok.http_request.*`, where the action puts them while it decides.
 * String literals are skipped so their text is never touched.
 */
export function retryExpression(expr: string): string {
  let out = ''
  let i = 0
  while (i < expr.length) {
    const ch = expr[i]!
    const quote = /^(?:[rRbB]{0,2})('''|"""|'|")/.exec(expr.slice(i))
    if (quote && (i === 0 || !/[A-Za-z0-9_]/.test(expr[i - 1]!))) {
      const q = quote[1]!
      let j = i + quote[0].length
      const raw = /[rR]/.test(quote[0].slice(0, -q.length))
      while (j < expr.length && !expr.startsWith(q, j)) j += !raw && expr[j] === '\\' ? 2 : 1
      j += q.length
      out += expr.slice(i, j)
      i = j
      continue
    }
    const ident = /^[A-Za-z_][A-Za-z0-9_]*/.exec(expr.slice(i))
    if (ident) {
      const word = ident[0]
      const before = out.trimEnd()
      if ((word === 'attempts' || word === 'last_attempt') && !before.endsWith('.')) out += `actions.ngrok.http_request.${word}`
      else out += word
      i += word.length
      continue
    }
    out += ch
    i++
  }
  return out
}

interface Attempt {
  res?: Record<string, unknown>
  error?: string
}

async function readLimited(res: Response): Promise<string> {
  if (!res.body) return ''
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.length
    if (size > MAX_RESPONSE_BYTES) {
      void reader.cancel()
      throw new Error(`response size exceeded (more than ${MAX_RESPONSE_BYTES} bytes)`)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}

const DURATION = v.pipe(
  v.string(),
  v.check((t) => {
    const ms = parseDuration(t)
    return ms !== undefined && ms >= 1000 && ms <= 30_000
  }, 'must be a duration between 1s and 30s, such as "3s"'),
)

/**
 * Makes a side request and exposes its answer to later actions as `actions.ngrok.http_request.res`
 * (`status_code`, `header`, `body` up to 256 KiB). `.internal` URLs go through that internal
 * endpoint of the same account (its policy runs); others are fetched directly.
 */
export const httpRequest = defineAction({
  type: 'http-request',
  phases: ['on_http_request', 'on_http_response'],
  terminating: false,
  readOnly: true,
  config: v.strictObject({
    /** Target URL (`http(s)://…`, `https://auth.internal/check`); `${…}` allowed. */
    url: v.string(),
    /** GET (default), PUT, POST, PATCH, DELETE or OPTIONS. */
    method: v.optional(v.pipe(v.string(), v.toUpperCase(), v.picklist(METHODS, 'must be one of GET, PUT, POST, PATCH, DELETE, OPTIONS')), 'GET'),
    /** Query parameters appended to the URL, in order; values are templates. */
    query_params: v.optional(v.array(v.strictObject({ /** Parameter name. */ key: v.pipe(v.string(), v.minLength(1), v.maxLength(128)), /** Value; `${…}` allowed. */ value: v.string() })), []),
    /** Request headers; values are templates. */
    headers: v.optional(v.record(v.pipe(v.string(), v.regex(HEADER_NAME, 'is not a valid header name')), v.string()), {}),
    /** Request body (not sent with GET); `${…}` allowed. */
    body: v.optional(v.string()),
    /** Redirects to follow; 0 (default) returns a 3xx as the result. More than this many fails. 0-100. */
    max_redirects: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(100)), 0),
    /** Time for the whole action, retries included; 1s-30s, default "3s". */
    timeout: v.optional(DURATION, '3s'),
    /** CEL condition checked after each attempt (`last_attempt.res.status_code >= 500`, `attempts < 3`); true retries, at most 3 times. */
    retry_condition: v.optional(v.string()),
    /** `continue` (default): a failed request only sets `error`. `halt`: it answers 502. */
    on_error: v.optional(v.picklist(['continue', 'halt']), 'continue'),
  }),
  build(config, env) {
    const urlTpl = env.template(config.url, ['config', 'url'])
    const query = config.query_params.map((q, i) => [q.key, env.template(q.value, ['config', 'query_params', i, 'value'])] as const)
    const headerTpls = Object.entries(config.headers).map(([name, value]) => [name.toLowerCase(), env.template(value, ['config', 'headers', name])] as const)
    const bodyTpl = config.body === undefined ? undefined : env.template(config.body, ['config', 'body'])
    const retry: CelProgram | undefined = config.retry_condition === undefined ? undefined : env.expression(retryExpression(config.retry_condition), ['config', 'retry_condition'])
    const timeoutMs = parseDuration(config.timeout)!
    const method = config.method
    const maxRedirects = config.max_redirects
    const halt = config.on_error === 'halt'

    /** One attempt: the request, following up to max_redirects redirects. */
    async function send(ex: HttpExchange, first: URL, headers: Headers, body: string | undefined, signal: AbortSignal): Promise<Response> {
      let url = first
      let m: string = method
      let payload = body
      for (let hops = 0; ; hops++) {
        const init = { method: m, headers, body: payload, redirect: 'manual' as const, signal }
        let res: Response
        if (url.hostname.endsWith('.internal')) {
          if (!ex.routing) throw new Error(`internal endpoints cannot be reached from here (${url.origin})`)
          const found = ex.routing.resolveInternal(url)
          if ('error' in found) throw new Error(found.error.message)
          // The internal endpoint's own forward has its own timeout; this action's deadline still wins.
          const aborted = new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }))
          // Its forward adds the client address to X-Forwarded-For itself: setting it here too would list it twice.
          res = await Promise.race([ex.routing.fetchInternal(found.endpoint, new Request(url.href, init)), aborted])
        } else {
          const external = new Headers(headers)
          if (ex.conn.clientIp) external.set('x-forwarded-for', ex.conn.clientIp)
          res = await fetch(url, { ...init, headers: external })
        }
        const location = res.headers.get('location')
        if (maxRedirects === 0 || res.status < 300 || res.status > 399 || !location) return res
        if (hops >= maxRedirects) {
          void res.body?.cancel()
          throw new Error(`more than ${maxRedirects} redirects`)
        }
        void res.body?.cancel()
        url = new URL(location, url)
        if (res.status === 303 || ((res.status === 301 || res.status === 302) && m === 'POST')) {
          m = 'GET'
          payload = undefined
        }
      }
    }

    return async function httpRequest(ex) {
      const context = () => celContext(ex)
      const headers = new Headers()
      for (const [name, tpl] of headerTpls) headers.set(name, headerValue(tpl.render(context)))
      if (!headers.has('user-agent')) headers.set('user-agent', 'warren/http-request')
      // What ngrok documents for side requests, with warren's prefix: the kind of request and an id
      // that all attempts of this side request share, so the target can tell them from client traffic.
      headers.set('warren-req-type', 'http-request')
      headers.set('warren-req-id', randomUUID())
      const body = bodyTpl && method !== 'GET' ? bodyTpl.render(context) : undefined
      const urlText = urlTpl.render(context)
      let url: URL | undefined
      let invalid = ''
      try {
        url = new URL(urlText)
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`"${urlText}" is not an http(s) URL`)
        for (const [key, tpl] of query) url.searchParams.append(key, tpl.render(context))
      } catch (err) {
        url = undefined
        invalid = err instanceof TypeError ? `"${urlText}" is not a valid URL` : (err as Error).message
      }
      const req = { method, url: url?.href ?? urlText, header: headerLists(headers), body: body ?? '' }
      const attempts: Record<string, unknown>[] = []
      let last: Attempt = url ? {} : { error: invalid }
      if (url) {
        const abort = new AbortController()
        const timer = setTimeout(() => abort.abort(), timeoutMs)
        try {
          for (let n = 1; ; n++) {
            const started = performance.now()
            try {
              const res = await send(ex, url, headers, body, abort.signal)
              const text = await readLimited(res)
              const ms = String(Math.round(performance.now() - started))
              const status = BigInt(res.status)
              const header = headerLists(res.headers)
              last = { res: { status_code: status, statusCode: status, header, body: text, time_ms: ms, resolved_ip: '' } }
              attempts.push({ response_status_code: status, response_header: header, response_time_ms: ms, resolved_ip: '' })
            } catch (err) {
              const message = abort.signal.aborted ? `timed out after ${config.timeout}` : err instanceof Error ? err.message : String(err)
              last = { error: message }
              attempts.push({ response_status_code: 0n, response_header: {}, response_time_ms: String(Math.round(performance.now() - started)), resolved_ip: '', error: message })
            }
            if (!retry || n > MAX_RETRIES || abort.signal.aborted) break
            ex.actions['http_request'] = { attempts: BigInt(n), last_attempt: { req, res: last.res ?? {}, error: last.error ?? '' } }
            let again = false
            try {
              again = retry(celContext(ex)) === true
            } catch {
              again = false
            }
            if (!again) break
          }
        } finally {
          clearTimeout(timer)
        }
      }
      const error = last.error === undefined ? { code: '', message: '' } : { code: CODES.SIDE_REQUEST_FAILED, message: last.error }
      ex.actions['http_request'] = { req, res: last.res ?? { status_code: 0n, header: {}, body: '', time_ms: '', resolved_ip: '' }, attempts, error }
      if (last.error === undefined || !halt) return CONTINUE
      return { kind: 'respond', response: errorResponse(502, CODES.SIDE_REQUEST_FAILED, `A side request failed: ${last.error}`, ex.headers.get('accept')) }
    }
  },
})
