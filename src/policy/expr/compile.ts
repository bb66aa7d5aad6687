import { CODES } from '../../lib/errors.ts'
import type { ConfigIssue, IssuePath } from '../issue.ts'
import { PHASES, type Phase } from '../types.ts'
import { environmentFor, type EnvironmentKey } from './env.ts'
import type { HttpExchange } from '../types.ts'
import { compileFast, FAST_RUNTIME, FastGenerator } from './fast.ts'
import { originalOffset, publicNames, rewrite, type Edit } from './rewrite.ts'

/** A compiled expression: call it with the variables (`celContext`). Throws `CelEvaluationError`. */
export type CelProgram = (context: Record<string, unknown>) => unknown

export interface CelCompileOptions {
  /**
   * The phase the expression runs in: it decides which variables and macros exist (`res` and
   * `getResHeader` only in on_http_response). Defaults to the phase that starts `path`, else all.
   */
  phase?: Phase
}

/** "line 2, column 5" (or "column 5" for one-line text) of an offset, both 1-based. */
export function positionText(text: string, offset: number): string {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)))
  const line = before.split('\n').length
  const column = before.length - before.lastIndexOf('\n')
  return text.includes('\n') ? `line ${line}, column ${column}` : `column ${column}`
}

interface CelErrorLike {
  summary?: string
  message?: string
  range?: { start: number; end: number }
}

/** The one-line reason of a cel-js (or handler) error and its offset in the original expression. */
function reason(err: unknown, edits: readonly Edit[]): { summary: string; offset: number | undefined } {
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as CelErrorLike
  const text = e.summary ?? (e.message ?? String(err)).split('\n')[0] ?? ''
  return { summary: publicNames(text), offset: e.range ? originalOffset(edits, e.range.start) : undefined }
}

/**
 * A failure while evaluating an expression for one request; the message names where in the
 * expression. Summary, offset and message are worked out when first read: a rule whose expression
 * fails (a missing header or variable) is skipped without anyone reading them.
 */
export class CelEvaluationError extends Error {
  readonly expression: string
  #edits: readonly Edit[]
  #reason: { summary: string; offset: number | undefined } | undefined

  constructor(expression: string, edits: readonly Edit[], cause: unknown) {
    super(undefined, { cause })
    this.name = 'CelEvaluationError'
    this.expression = expression
    this.#edits = edits
  }

  #described(): { summary: string; offset: number | undefined } {
    return (this.#reason ??= reason(this.cause, this.#edits))
  }
  get summary(): string {
    return this.#described().summary
  }
  /** Offset in `expression` the failure points at, when cel-js knows it. */
  get offset(): number | undefined {
    return this.#described().offset
  }
  // A getter over Error's `message`: it is computed on first read.
  override get message(): string {
    const { summary, offset } = this.#described()
    return offset === undefined ? summary : `${summary} (at ${positionText(this.expression, offset)})`
  }
}

/** The checked AST behind each program that has a fast form, for generated code (`celStatement`). */
const FAST_ASTS = new WeakMap<CelProgram, unknown>()

/**
 * A statement of generated code (phase-code.ts, interpolate.ts) that sets `variable` to `program`'s
 * value: its fast form inlined, with `fallback` (code that runs the whole program) where the fast
 * code declines or fails, or only `fallback` when there is no fast form.
 */
export function celStatement(gen: FastGenerator, program: CelProgram, variable: string, fallback: string): string {
  const ast = FAST_ASTS.get(program)
  const fast = ast === undefined ? undefined : gen.code(ast)
  return fast ? `try { ${variable} = ${fast.js} } catch { ${variable} = ${fallback} }` : `${variable} = ${fallback}`
}

/**
 * `program` as a function of an exchange (a `${expr}` value of set-vars or log): its fast form
 * generated to read the exchange itself (context.ts EXCHANGE_READS), else, or where that declines,
 * the whole program on the exchange's variables. Throws what the program throws.
 */
export function exchangeProgram(program: CelProgram): (ex: HttpExchange) => unknown {
  const gen = new FastGenerator({ exchange: true })
  const statement = celStatement(gen, program, 'v', 'P(rt.context(ex))')
  const locals = ['v', ...Array.from({ length: gen.temps }, (_, i) => `t${i}`)].join(', ')
  // The source is built only from fixed templates and the fast generator's output.
  const factory = new Function('rt', 'K', 'P', `'use strict'\nreturn function exchangeProgram(ex) {\n  let ${locals}\n  ${statement}\n  return v\n}`) as (
    rt: typeof FAST_RUNTIME,
    constants: readonly unknown[],
    program: CelProgram,
  ) => (ex: HttpExchange) => unknown
  return factory(FAST_RUNTIME, Object.freeze(gen.constants), program)
}

function phaseOf(path: IssuePath): Phase | undefined {
  const first = path[0]
  return PHASES.find((p) => p === first)
}

/** Says why a variable or macro is missing when the phase is what hides it. */
function hint(summary: string, key: EnvironmentKey): string {
  if (key === 'any') return summary
  const variable = /^Unknown variable: (req|res)$/.exec(summary)?.[1]
  if (variable) return `${summary} (${variable} is not available in ${key})`
  const macro = /overload for '((?:get|has)(Req|Res)(?:Header|Cookie)|(?:get|has)QueryParam)\(/.exec(summary)
  if (macro) return `${summary} (${macro[1]}() is only available in ${macro[2] === 'Res' ? 'on_http_response and on_event_stream_message' : 'on_http_request, on_http_response and on_event_stream_message'})`
  return summary
}

function issue(path: IssuePath, expr: string, summary: string, offset: number | undefined): { issue: ConfigIssue } {
  const where = offset === undefined ? '' : ` (at ${positionText(expr, offset)})`
  return { issue: { code: CODES.EXPRESSION_INVALID, path, message: `invalid expression "${expr}": ${summary}${where}` } }
}

/**
 * Parses and type-checks one CEL expression against ngrok's variables and macros for its phase.
 * `want: 'bool'` is for rule expressions (ngrok requires a boolean result); templates take any
 * type. Returns the program, or the issue to report with the position inside the expression.
 *
 * @example compileCel("req.url.path.startsWith('/api')", ['on_http_request', 0, 'expressions', 0], 'bool')
 */
export function compileCel(
  expr: string,
  path: IssuePath,
  want: 'bool' | 'any',
  options: CelCompileOptions = {},
): { program: CelProgram } | { issue: ConfigIssue } {
  const key: EnvironmentKey = options.phase ?? phaseOf(path) ?? 'any'
  const env = environmentFor(key)
  let edits: readonly Edit[] = []
  try {
    const rewritten = rewrite(expr, env)
    edits = rewritten.edits
    const problem = rewritten.problems[0]
    if (problem) return issue(path, expr, problem.message, problem.offset)
    const parsed = env.parse(rewritten.text)
    const checked = parsed.check()
    if (!checked.valid) {
      const r = reason(checked.error, edits)
      return issue(path, expr, hint(r.summary, key), r.offset)
    }
    if (want === 'bool' && checked.type !== 'bool' && checked.type !== 'dyn')
      return issue(path, expr, `it returns ${publicNames(checked.type ?? 'unknown')}, not bool`, undefined)
    const full = parsed as unknown as CelProgram
    const ast = (parsed as unknown as { ast: unknown }).ast
    const fast = compileFast(ast)
    const program: CelProgram = function evaluateCel(context) {
      if (fast !== undefined) {
        try {
          return fast(context)
        } catch {
          // Values the generated program does not handle: cel-js gives the CEL result or error.
        }
      }
      try {
        return full(context)
      } catch (err) {
        throw new CelEvaluationError(expr, edits, err)
      }
    }
    if (fast !== undefined) FAST_ASTS.set(program, ast)
    return { program }
  } catch (err) {
    const r = reason(err, edits)
    return issue(path, expr, hint(r.summary, key), r.offset)
  }
}
