/**
 * In-process harness for action unit tests: compile a one-action policy the way the loader does
 * (schema, phase rules, CEL, build) and run it against a hand-made exchange.
 */
import type { Scheme } from '../../src/config/url.ts'
import { compilePolicy, runPhase, validatePolicy, type CompiledPolicy } from '../../src/policy/engine.ts'
import { ConfigIssues } from '../../src/policy/issue.ts'
import type { HttpExchange, Outcome, Phase } from '../../src/policy/types.ts'

export interface ActionCase {
  type: string
  config?: unknown
  phase?: Phase
  scheme?: Scheme
}

function policyOf(c: ActionCase): unknown {
  const action = c.config === undefined ? { type: c.type } : { type: c.type, config: c.config }
  return { [c.phase ?? 'on_http_request']: [{ actions: [action] }] }
}

/** Compiles a policy (not a cloud endpoint: no terminating action needed). Throws ConfigIssues. */
export function compile(policy: unknown, scheme: Scheme = 'http'): CompiledPolicy {
  return compilePolicy(validatePolicy(policy), { scheme, cloud: false })
}

/** The first load error of a one-action policy as `CODE: message`, or undefined when it loads. */
export function loadError(c: ActionCase): string | undefined {
  try {
    compile(policyOf(c), c.scheme)
    return undefined
  } catch (err) {
    if (!(err instanceof ConfigIssues)) throw err
    const first = err.issues[0]!
    return `${first.code}: ${first.message}`
  }
}

/** An exchange as the pipeline would make it for `url`, with overrides. */
export function exchange(url = 'http://app.example.com:8080/', init: Partial<HttpExchange> & { headersInit?: ConstructorParameters<typeof Headers>[0] } = {}): HttpExchange {
  const { headersInit, ...rest } = init
  const u = new URL(url)
  const headers = new Headers(headersInit)
  if (!headers.has('host')) headers.set('host', u.host)
  return {
    endpoint: { id: 'ep_test', url: `${u.protocol}//${u.hostname}`, scheme: u.protocol.slice(0, -1) as Scheme, host: u.hostname, port: Number(u.port || 80), binding: 'public' },
    conn: { clientIp: '203.0.113.7', clientPort: 50000, serverIp: '127.0.0.1', serverPort: 8080, startedAt: Date.now() },
    method: 'GET',
    url: u,
    headers,
    vars: {},
    actions: {},
    logMetadata: {},
    ...rest,
  }
}

/** Compiles the one-action policy and runs its phase over `ex`. */
export async function run(c: ActionCase, ex: HttpExchange): Promise<Outcome> {
  const phase = c.phase ?? 'on_http_request'
  return runPhase(compile(policyOf(c), c.scheme)[phase], ex)
}

/** The response of a `respond` outcome, or undefined. */
export function responded(outcome: Outcome): Response | undefined {
  return outcome.kind === 'respond' ? outcome.response : undefined
}
