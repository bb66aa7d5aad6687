import { pathText } from '../config/document.ts'
import { CODES, WarrenError } from '../lib/errors.ts'
import { celStatement, CelEvaluationError, compileCel, type CelCompileOptions, type CelProgram } from './expr/compile.ts'
import { FAST_RUNTIME, FastGenerator } from './expr/fast.ts'
import { toText } from './expr/values.ts'
import type { ConfigIssue, IssuePath } from './issue.ts'
import type { HttpExchange } from './types.ts'

type Context = () => Record<string, unknown>

/**
 * A config string with `${expr}` parts, compiled once; `render`/`renderValue` run per request and
 * throw a `WarrenError` with code `POLICY_EVAL_FAILED` (status 500) when an expression fails.
 */
export interface Template {
  /** True when the text has no `${…}`: callers can skip per-request work. */
  readonly constant: boolean
  /** The text with every `${…}` replaced by its value (strings as-is, other values as JSON). */
  render(context: Context): string
  /**
   * `render` for an exchange, reading what it can from the exchange itself (context.ts EXCHANGE_READS):
   * `${conn.client_ip}` makes no variable objects, and the caller no closure.
   */
  renderFor(ex: HttpExchange): string
  /**
   * The value with its CEL type when the text is exactly one `${expr}` (`"${req.headers}"` gives the
   * map, `"${size(x)}"` a bigint); otherwise the same string as `render`.
   */
  renderValue(context: Context): unknown
}

type Part = string | { expr: string; program: CelProgram }

/** Finds `${…}` spans, skipping braces inside quoted CEL strings. */
function split(text: string): { parts: (string | { expr: string })[] } | { error: string } {
  const parts: (string | { expr: string })[] = []
  let i = 0
  let literal = ''
  while (i < text.length) {
    if (text[i] === '$' && text[i + 1] === '{') {
      let depth = 1
      let j = i + 2
      let quote: string | null = null
      for (; j < text.length && depth > 0; j++) {
        const ch = text[j]
        if (quote) {
          if (ch === '\\') j++
          else if (ch === quote) quote = null
        } else if (ch === '"' || ch === "'") quote = ch
        else if (ch === '{') depth++
        else if (ch === '}') depth--
      }
      if (depth > 0) return { error: `unclosed "\${" at offset ${i}` }
      if (literal) parts.push(literal)
      literal = ''
      parts.push({ expr: text.slice(i + 2, j - 1) })
      i = j
    } else {
      literal += text[i]
      i++
    }
  }
  if (literal) parts.push(literal)
  return { parts }
}

/** A template that always gives `text` (also what a broken template stands in for after its issue is reported). */
export function constantTemplate(text: string): Template {
  return { constant: true, render: () => text, renderFor: () => text, renderValue: () => text }
}

function evaluate(part: { expr: string; program: CelProgram }, ctx: Record<string, unknown>, path: IssuePath): unknown {
  try {
    return part.program(ctx)
  } catch (err) {
    const why = err instanceof CelEvaluationError ? err.message : err instanceof Error ? err.message : String(err)
    const where = path.length ? ` in ${pathText(path)}` : ''
    throw new WarrenError(CODES.POLICY_EVAL_FAILED, `Cannot evaluate "\${${part.expr}}"${where}: ${why}`, { status: 500, cause: err })
  }
}

/**
 * Compiles `text` into a template, or returns the issues found in its expressions. `options.phase`
 * picks the variables the expressions may use (default: the phase `path` starts with).
 *
 * @example compileTemplate('hello ${conn.client_ip}', ['on_http_request', 0, 'actions', 0, 'config', 'body'])
 */
export function compileTemplate(text: string, path: IssuePath, options: CelCompileOptions = {}): Template | ConfigIssue[] {
  const found = split(text)
  if ('error' in found)
    return [{ code: CODES.EXPRESSION_INVALID, path, message: `invalid template "${text}": ${found.error}` }]
  const issues: ConfigIssue[] = []
  const parts: Part[] = []
  for (const part of found.parts) {
    if (typeof part === 'string') {
      parts.push(part)
      continue
    }
    const compiled = compileCel(part.expr, path, 'any', options)
    if ('issue' in compiled) issues.push(compiled.issue)
    else parts.push({ expr: part.expr, program: compiled.program })
  }
  if (issues.length) return issues
  if (parts.every((p) => typeof p === 'string')) return constantTemplate(parts.join(''))
  const full = (i: number, ctx: Record<string, unknown>): unknown => evaluate(parts[i] as { expr: string; program: CelProgram }, ctx, path)
  const render = generateRender(parts, full, false) as (ctx: Record<string, unknown>) => string
  const only = parts.length === 1 && typeof parts[0] !== 'string' ? parts[0] : undefined
  let renderFor: ((ex: HttpExchange) => string) | undefined
  return {
    constant: false,
    render: (context) => render(context()),
    // Generated on first use: most templates are rendered by callers without an exchange or with one only.
    renderFor: (ex) => (renderFor ??= generateRender(parts, full, true) as (ex: HttpExchange) => string)(ex),
    renderValue: only ? (context) => evaluate(only, context(), path) : (context) => render(context()),
  }
}

/**
 * One generated function that renders the template: its constant parts are JSON string literals
 * concatenated with the text of each `${…}`, whose fast form (expr/fast.ts) is inlined; `full`
 * evaluates part `i` with its whole program where the fast code declines or there is none. With
 * `exchange` the function takes the exchange (`renderFor`), else the variables.
 */
function generateRender(parts: readonly Part[], full: (i: number, ctx: Record<string, unknown>) => unknown, exchange: boolean): (input: never) => string {
  const gen = new FastGenerator({ exchange })
  const statements: string[] = []
  const pieces: string[] = []
  parts.forEach((part, i) => {
    if (typeof part === 'string') return pieces.push(JSON.stringify(part))
    statements.push(celStatement(gen, part.program, `s${i}`, `F(${i}, ${exchange ? 'rt.context(ex)' : 'c'})`))
    return pieces.push(`T(s${i})`)
  })
  const locals = [...parts.flatMap((p, i) => (typeof p === 'string' ? [] : [`s${i}`])), ...Array.from({ length: gen.temps }, (_, i) => `t${i}`)]
  const source = `'use strict'\nreturn function renderTemplate(${exchange ? 'ex' : 'c'}) {\n  let ${locals.join(', ')}\n  ${statements.join('\n  ')}\n  return ${pieces.join(' + ')}\n}`
  // The source is built only from fixed templates, indexes, JSON literals and the fast generator's output.
  const factory = new Function('rt', 'K', 'F', 'T', source) as (
    rt: typeof FAST_RUNTIME,
    constants: readonly unknown[],
    full: (i: number, ctx: Record<string, unknown>) => unknown,
    text: (value: unknown) => string,
  ) => (input: never) => string
  return factory(FAST_RUNTIME, Object.freeze(gen.constants), full, toText)
}
