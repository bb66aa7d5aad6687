import { Environment, type ObjectSchema } from '@marcbachmann/cel-js'
import { VARIABLE_CLASSES } from '../context.ts'
import { Cookie } from '../cookies.ts'
import type { Phase } from '../types.ts'
import { registerEncoding } from './functions/encoding.ts'
import { registerHash } from './functions/hash.ts'
import { registerRequestMacros, registerResponseMacros } from './functions/http.ts'
import { registerLists } from './functions/lists.ts'
import { registerNet } from './functions/net.ts'
import { registerRandom } from './functions/random.ts'
import { registerStrings } from './functions/strings.ts'
import { registerTime } from './functions/time.ts'
import { COOKIE_FIELDS, PHASE_VARIABLES, SCHEMAS } from './variables.ts'

/** The function groups of the policy CEL environment, beyond the CEL standard library cel-js has. */
export const FUNCTION_GROUPS: readonly { name: string; register(env: Environment): void }[] = [
  { name: 'net', register: registerNet },
  { name: 'strings', register: registerStrings },
  { name: 'encoding', register: registerEncoding },
  { name: 'hash', register: registerHash },
  { name: 'lists', register: registerLists },
  { name: 'random', register: registerRandom },
  { name: 'time', register: registerTime },
]

export type EnvironmentKey = Phase | 'any'

/**
 * Registers the type of every typed variable and of its nested values (`req`, `req.url` …) with the
 * class context.ts builds its values from; returns the type name of each variable.
 */
function registerVariableTypes(env: Environment): Record<string, string> {
  const registered = new Set<string>()
  const visit = (path: string, schema: ObjectSchema): string => {
    const Class = VARIABLE_CLASSES[path]
    if (!Class) throw new TypeError(`context.ts has no class for the variable type "${path}"`)
    const fields: Record<string, string> = {}
    for (const [key, type] of Object.entries(schema)) fields[key] = typeof type === 'string' ? type : visit(`${path}.${key}`, type)
    if (!registered.has(Class.name)) env.registerType(Class.name, { ctor: Class, fields })
    registered.add(Class.name)
    return Class.name
  }
  return Object.fromEntries(Object.entries(SCHEMAS).map(([name, schema]) => [name, visit(name, schema)]))
}

function baseEnvironment(): { env: Environment; types: Record<string, string> } {
  const env = new Environment({ homogeneousAggregateLiterals: false, enableOptionalTypes: true })
  env.registerType('Cookie', { ctor: Cookie, fields: COOKIE_FIELDS })
  const types = registerVariableTypes(env)
  for (const group of FUNCTION_GROUPS) group.register(env)
  return { env, types }
}

function phaseEnvironment({ env: base, types }: { env: Environment; types: Record<string, string> }, key: EnvironmentKey): Environment {
  const env = base.clone()
  const names = PHASE_VARIABLES[key]
  for (const name of names) env.registerVariable(name, types[name] ?? 'dyn')
  if (names.includes('req')) registerRequestMacros(env)
  if (names.includes('res')) registerResponseMacros(env)
  return env
}

let base: { env: Environment; types: Record<string, string> } | undefined
const environments = new Map<EnvironmentKey, Environment>()

/**
 * The environment of a phase (its variables and macros), or of every variable when the phase is
 * unknown. Built on first use and kept: expressions are parsed and checked against it at load, never
 * per request, and an edge only pays for the phases its policies use (~1 MB each).
 */
export function environmentFor(key: EnvironmentKey = 'any'): Environment {
  let env = environments.get(key)
  if (!env) {
    env = phaseEnvironment((base ??= baseEnvironment()), key)
    environments.set(key, env)
  }
  return env
}
