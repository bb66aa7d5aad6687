import * as v from 'valibot'
import { log } from '../../lib/log.ts'
import { celContext } from '../context.ts'
import { CONTINUE, defineAction, type BuildEnv } from '../types.ts'
import { compileRegExp } from './url-rewrite.ts'

/** Bodies up to this size (by Content-Length) are read whole: exact matching, exact Content-Length. */
export const BUFFER_LIMIT = 1024 * 1024
/** Streamed bodies keep this much text back between chunks, so matches shorter than it are never split. */
export const STREAM_WINDOW = 64 * 1024

export interface Replacement {
  re: RegExp
  to: string
}

/** What the result variable `replacements` lists: each rule that matched, with its first match. */
export interface Matched {
  replacement_index: bigint
  matched_content: string
}

/** One find-and-replace rule, as the body actions and sse-find-replace write it. */
export const ReplacementSpec = v.strictObject({
  /** Regular expression to find (all matches are replaced); `${…}` allowed. */
  from: v.pipe(v.string(), v.minLength(1, 'must not be empty')),
  /** Replacement; `$1`, `$2`… insert captures; `${…}` allowed. Omitted or empty: matches are deleted. */
  to: v.optional(v.string(), ''),
})

/** The config shape both body actions share. */
export const ReplacementsSpec = v.pipe(v.array(ReplacementSpec), v.minLength(1, 'needs at least one replacement'))

/** Compiles the rules: constant patterns become RegExps at load, templated ones per request (cached). */
export function compileReplacements(
  list: readonly { from: string; to: string }[],
  env: BuildEnv,
): (context: () => Record<string, unknown>) => Replacement[] | { error: string } {
  const rules = list.map((r, i) => {
    const from = env.template(r.from, ['config', 'replacements', i, 'from'])
    const to = env.template(r.to, ['config', 'replacements', i, 'to'])
    const fixed = from.constant ? compileRegExp(r.from) : undefined
    return { from, to, fixed, cache: undefined as { source: string; re: RegExp } | undefined }
  })
  return function replacements(context) {
    const out: Replacement[] = []
    for (const rule of rules) {
      let re = rule.fixed
      if (!re) {
        const source = rule.from.render(context)
        if (rule.cache?.source !== source) {
          try {
            rule.cache = { source, re: compileRegExp(source) }
          } catch (err) {
            return { error: (err as Error).message }
          }
        }
        re = rule.cache.re
      }
      out.push({ re, to: rule.to.render(context) })
    }
    return out
  }
}

/** Text bodies only: a binary body decoded as UTF-8 would be damaged. No Content-Type counts as text. */
export function isTextual(contentType: string | null): boolean {
  if (!contentType) return true
  return /^(text\/|application\/([\w.+-]*\+)?(json|xml|javascript|ecmascript|x-www-form-urlencoded|graphql|yaml|x-ndjson|ld\+json)\b|image\/svg\+xml)/i.test(contentType)
}

/** Replaces every match of `rule` in `text`; the rule's first match goes to `found` once (`seen` holds the rules already listed). */
export function applyRule(text: string, rule: Replacement, index: number, found: Matched[], seen: Set<number>): string {
  if (!seen.has(index)) {
    rule.re.lastIndex = 0
    const first = rule.re.exec(text)
    rule.re.lastIndex = 0
    if (first) {
      seen.add(index)
      found.push({ replacement_index: BigInt(index), matched_content: first[0] })
    }
  }
  return text.replace(rule.re, rule.to)
}

/** One rule over a stream of text: holds back STREAM_WINDOW characters and never cuts through a match it can see. */
function stage(rule: Replacement, index: number, found: Matched[], seen: Set<number>) {
  let buf = ''
  const scan = new RegExp(rule.re.source, rule.re.flags)
  return function push(text: string, final: boolean): string {
    buf += text
    if (final) {
      const out = applyRule(buf, rule, index, found, seen)
      buf = ''
      return out
    }
    if (buf.length < 2 * STREAM_WINDOW) return ''
    let cut = buf.length - STREAM_WINDOW
    scan.lastIndex = 0
    for (let m = scan.exec(buf); m; m = scan.exec(buf)) {
      if (m[0].length === 0) scan.lastIndex++
      if (m.index >= cut) break
      if (m.index + m[0].length > cut) {
        cut = m.index
        break
      }
    }
    // A match longer than the buffer allows: give up on exactness rather than hold everything.
    if (cut === 0) {
      if (buf.length < BUFFER_LIMIT) return ''
      cut = buf.length
    }
    const code = buf.charCodeAt(cut - 1)
    if (cut < buf.length && code >= 0xd800 && code <= 0xdbff) cut--
    const head = buf.slice(0, cut)
    buf = buf.slice(cut)
    return applyRule(head, rule, index, found, seen)
  }
}

/**
 * Applies the rules in order to a body. Bodies with a Content-Length up to BUFFER_LIMIT are read
 * whole and get the new Content-Length; others stream through (Content-Length removed) and `found`
 * fills in while they do.
 */
export async function rewriteBody(
  body: ReadableStream<Uint8Array>,
  headers: Headers,
  rules: Replacement[],
  found: Matched[],
): Promise<ReadableStream<Uint8Array>> {
  const seen = new Set<number>()
  const length = headers.get('content-length')
  if (length !== null && Number(length) <= BUFFER_LIMIT) {
    let text = await new Response(body).text()
    rules.forEach((rule, i) => (text = applyRule(text, rule, i, found, seen)))
    const bytes = new TextEncoder().encode(text)
    headers.set('content-length', String(bytes.length))
    return new Response(bytes).body!
  }
  headers.delete('content-length')
  const stages = rules.map((rule, i) => stage(rule, i, found, seen))
  const decoder = new TextDecoder()
  const encoder = new TextEncoder()
  const run = (text: string, final: boolean) => stages.reduce((t, push) => push(t, final), text)
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        const out = run(decoder.decode(chunk, { stream: true }), false)
        if (out) controller.enqueue(encoder.encode(out))
      },
      flush(controller) {
        const out = run(decoder.decode(), true)
        if (out) controller.enqueue(encoder.encode(out))
      },
    }),
  )
}

/** Why a body is left alone, or undefined when it can be rewritten. */
export function skipReason(headers: Headers): string | undefined {
  const encoding = headers.get('content-encoding')
  if (encoding && encoding.trim().toLowerCase() !== 'identity') return `the body is ${encoding}-encoded`
  if (!isTextual(headers.get('content-type'))) return `${headers.get('content-type')} is not text`
  return undefined
}

/**
 * Finds and replaces text in the request body with regular expressions, rule after rule. Text bodies
 * (JSON, forms, text/*) up to 1 MiB are rewritten whole with a corrected Content-Length; larger or
 * chunked ones are rewritten as they stream. Encoded (compressed) and binary bodies pass unchanged.
 */
export const requestBodyFindReplace = defineAction({
  type: 'request-body-find-replace',
  phases: ['on_http_request'],
  terminating: false,
  config: v.strictObject({
    /** Rules applied in order, each to the result of the one before. At least one. */
    replacements: ReplacementsSpec,
  }),
  build(config, env) {
    const replacements = compileReplacements(config.replacements, env)
    return async function requestBodyFindReplace(ex) {
      const found: Matched[] = []
      ex.actions['request_body_find_replace'] = { replacements: found }
      if (!ex.body) return CONTINUE
      const skip = skipReason(ex.headers)
      if (skip) {
        log.debug('request-body-find-replace skipped', { reason: skip })
        return CONTINUE
      }
      const rules = replacements(() => celContext(ex))
      if ('error' in rules) {
        log.debug('request-body-find-replace skipped', { reason: rules.error })
        return CONTINUE
      }
      ex.body = await rewriteBody(ex.body, ex.headers, rules, found)
      return CONTINUE
    }
  },
})
