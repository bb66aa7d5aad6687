import * as v from 'valibot'
import { CODES, WarrenError } from '../../lib/errors.ts'
import { exchangeProgram } from '../expr/compile.ts'
import { CONTINUE, defineAction, type BuildEnv, type HttpExchange } from '../types.ts'

/** A config value with its templates compiled, evaluated for an exchange per request. */
export type CompiledValue = (ex: HttpExchange) => unknown

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
      const program = exchangeProgram(env.expression(expr, path))
      return (ex) => {
        try {
          return program(ex)
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
    return (ex) => tpl.renderFor(ex)
  }
  if (typeof value === 'number') {
    const n = Number.isSafeInteger(value) ? BigInt(value) : value
    return () => n
  }
  if (Array.isArray(value)) {
    const items = value.map((item, i) => compileValue(item, env, [...path, i]))
    return (ex) => items.map((item) => item(ex))
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).map(([k, item]) => [k, compileValue(item, env, [...path, k])] as const)
    return (ex) => {
      const out: Record<string, unknown> = {}
      for (const [k, item] of entries) out[k] = item(ex)
      return out
    }
  }
  return () => value
}

const VAR_NAME_SCHEMA = v.pipe(v.string(), v.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'is not a valid variable name (letters, digits, _)'))

const FORMS = 'must be a list of one-entry maps or a map of name to value'

const VAR_LIST = v.pipe(
  v.array(
    v.pipe(
      v.record(VAR_NAME_SCHEMA, v.unknown()),
      v.check((m) => Object.keys(m).length === 1, 'each entry must set exactly one variable'),
    ),
  ),
  v.minLength(1, 'needs at least one variable'),
)

// A list is not a map here, so a list with a problem reports the list form's issue, not this one's.
const VAR_MAP = v.pipe(
  v.custom<Record<string, unknown>>((input) => typeof input === 'object' && input !== null && !Array.isArray(input), FORMS),
  v.record(VAR_NAME_SCHEMA, v.unknown()),
  v.check((m) => Object.keys(m).length > 0, 'needs at least one variable'),
)

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
    /**
     * The variables, in the order they are set: a list of one-entry maps (`- name: value`) or one map
     * (`name: value`), the two forms ngrok's pages show. Names are identifiers; values any YAML value
     * or template.
     */
    vars: v.union([VAR_LIST, VAR_MAP], FORMS),
  }),
  build(config, env) {
    const entries = Array.isArray(config.vars)
      ? config.vars.map((entry, i) => [Object.entries(entry)[0]!, ['config', 'vars', i]] as const)
      : Object.entries(config.vars).map((pair) => [pair, ['config', 'vars']] as const)
    const names = entries.map(([[name]]) => name)
    const values = entries.map(([[name, value], path]) => compileValue(value, env, [...path, name]))
    return function setVars(ex) {
      // Values read `vars` live (ex.vars), so later values see earlier ones.
      for (let k = 0; k < names.length; k++) ex.vars[names[k]!] = values[k]!(ex)
      return CONTINUE
    }
  },
})
