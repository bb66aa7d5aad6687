import { compilePolicy, validatePolicy } from '../policy/engine.ts'
import { ConfigIssues } from '../policy/issue.ts'
import type { EndpointSpec } from './spec.ts'

/**
 * What the edge would refuse in an endpoint's traffic policy, found before anything is bound: the
 * agent compiles with the edge's own engine, so `warren start --all` with one bad endpoint binds none.
 * One line per problem, each naming the endpoint and ending in its code.
 */
export function policyProblems(spec: EndpointSpec, where = `endpoint "${spec.name}"`): string[] {
  if (!spec.trafficPolicy) return []
  try {
    compilePolicy(validatePolicy(JSON.parse(spec.trafficPolicy)), { scheme: spec.scheme, cloud: false })
    return []
  } catch (err) {
    if (err instanceof ConfigIssues) return err.issues.map((i) => `${where}: traffic policy: ${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message} [${i.code}]`)
    throw err
  }
}
