import * as v from 'valibot'
import { CODES, WarrenError } from '../../lib/errors.ts'
import { celContext } from '../context.ts'
import { CONTINUE, defineAction, type BuildEnv } from '../types.ts'

/** A config value with its templates compiled; `evaluate` runs per request. */
export type CompiledValue = (context: () => Record<string, unknown>) => unknown

/** `"${expr}"` and nothing else: the expression's own type is kept (list, map, int…). */
const WHOLE = /^\$\{([\s\S]*)\}$/

/**
 * Compiles a YAML/JSON value whose strings may hold `${…}`, recursively. A string that is exactly one
 * `${expr}` evaluates to the expression's value with its type; other strings render as text. Integers
 * become CEL ints (bigint) so `vars.n == 1` compares as written.
 */
export function compileValue(value: unknown, env: BuildEnv, path: readonly (string | number)[]): CompiledValue {
  if (typeof value === 'string') {
    const whole = WHOLE.exec(value)
    if (whole && !whole[1]!.includes('${')) {
      const expr = whole[1]!
      const program = env.expression(expr, path)
      return (context) => {
        try {
          return program(context())
        } catch (err) {
          // Same failure as a template's: the engine answers 500 with the code (ngrok 3900).
          const why = err instanceof Error ? err.message : String(err)
          throw new WarrenError(CODES.POLICY_EVAL_FAILED, `Cannot evaluate "\${${expr}}": ${why}`, { status: 500, cause: err })
        }
      }
    }
    const tpl = env.template(value, path)
    if (tpl.constant) {
      const text = tpl.render(() => ({}))
      return () => text
    }
    return (context) => tpl.render(context)
  }
  if (typeof value === 'number') {
    const n = Number.isSafeInteger(value) ? BigInt(value) : value
    return () => n
  }
  if (Array.isArray(value)) {
    const items = value.map((item, i) => compileValue(item, env, [...path, i]))
    return (context) => items.map((item) => item(context))
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).map(([k, item]) => [k, compileValue(item, env, [...path, k])] as const)
    return (context) => {
      const out: Record<string, unknown> = {}
      for (const [k, item] of entries) out[k] = item(context)
      return out
    }
  }
  return () => value
}

const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * Sets variables (`vars.<name>` in later expressions and templates), in order: a value may use the
 * ones set before it. Values keep their YAML type; a string that is exactly `${expr}` takes the
 * expression's type. Variables belong to the phase they are set in. A value that cannot be
 * evaluated fails the request like any `${…}` (500, ERR_WARREN_3900).
 */
export const setVars = defineAction({
  type: 'set-vars',
  phases: ['on_tcp_connect', 'on_http_request', 'on_http_response'],
  terminating: false,
  readOnly: true,
  config: v.strictObject({
    /** List of one-entry maps `- name: value`; names are identifiers, values any YAML value or template. */
    vars: v.pipe(
      v.array(
        v.pipe(
          v.record(v.pipe(v.string(), v.regex(VAR_NAME, 'is not a valid variable name (letters, digits, _)')), v.unknown()),
          v.check((m) => Object.keys(m).length === 1, 'each entry must set exactly one variable'),
        ),
      ),
      v.minLength(1, 'needs at least one variable'),
    ),
  }),
  build(config, env) {
    const vars = config.vars.map((entry, i) => {
      const [name, value] = Object.entries(entry)[0]!
      return [name, compileValue(value, env, ['config', 'vars', i, name])] as const
    })
    return function setVars(ex) {
      // The context holds `vars: ex.vars` by reference, so later values see earlier ones.
      const context = () => celContext(ex)
      for (const [name, value] of vars) ex.vars[name] = value(context)
      return CONTINUE
    }
  },
})
