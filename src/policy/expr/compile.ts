import { Environment } from '@marcbachmann/cel-js'
import { CODES } from '../../lib/errors.ts'
import type { ConfigIssue, IssuePath } from '../issue.ts'

/** The variables a policy expression can read; values are built per request by `celContext`. */
const VARIABLES = ['conn', 'req', 'res', 'endpoint', 'vars', 'time', 'actions'] as const

function makeEnvironment(): Environment {
  const env = new Environment({ homogeneousAggregateLiterals: false, enableOptionalTypes: true })
  for (const name of VARIABLES) env.registerVariable(name, 'dyn')
  return env
}

const env = makeEnvironment()

export type CelProgram = (context: Record<string, unknown>) => unknown

/** A CEL failure, reported at load time with the expression's key path. */
function issue(path: IssuePath, expr: string, err: unknown): ConfigIssue {
  const text = err instanceof Error ? err.message.split('\n')[0] : String(err)
  return { code: CODES.EXPRESSION_INVALID, path, message: `invalid expression "${expr}": ${text}` }
}

/**
 * Parses and type-checks one CEL expression. `want: 'bool'` is for rule expressions (ngrok requires a
 * boolean result); templates take any type. Returns the program or the issue to report.
 */
export function compileCel(
  expr: string,
  path: IssuePath,
  want: 'bool' | 'any',
): { program: CelProgram } | { issue: ConfigIssue } {
  try {
    const program = env.parse(expr)
    const checked = program.check()
    if (!checked.valid) return { issue: issue(path, expr, checked.error) }
    if (want === 'bool' && checked.type !== 'bool' && checked.type !== 'dyn')
      return { issue: issue(path, expr, new Error(`it returns ${checked.type}, not bool`)) }
    return { program: program as unknown as CelProgram }
  } catch (err) {
    return { issue: issue(path, expr, err) }
  }
}
