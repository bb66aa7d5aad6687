import * as v from 'valibot'
import { describeIssue, issuePath } from '../config/document.ts'
import { TrafficPolicySpec, type TrafficPolicy } from '../config/schema/v1/policy.ts'
import type { Scheme } from '../config/url.ts'
import { CODES } from '../lib/errors.ts'
import { log } from '../lib/log.ts'
import { ACTIONS_BY_TYPE } from './actions/index.ts'
import { celContext } from './context.ts'
import { compileCel, type CelProgram } from './expr/compile.ts'
import { compileTemplate } from './interpolate.ts'
import { ConfigIssues, type ConfigIssue } from './issue.ts'
import { CONTINUE, PHASES, type ActionRun, type HttpExchange, type Outcome, type Phase } from './types.ts'

export interface CompiledRule {
  name: string
  conditions: CelProgram[]
  actions: ActionRun[]
}

/** A traffic policy turned into closures: nothing is parsed per request. */
export type CompiledPolicy = Readonly<Record<Phase, readonly CompiledRule[]>>

export const EMPTY_POLICY: CompiledPolicy = { on_tcp_connect: [], on_http_request: [], on_http_response: [] }

const HTTP_PHASES: ReadonlySet<Phase> = new Set(['on_http_request', 'on_http_response'])

export interface CompileOptions {
  scheme: Scheme
  /** Cloud endpoints must end every request in a terminating action (ngrok 6029). */
  cloud: boolean
}

/** Validates a raw policy (already parsed from YAML/JSON) against the schema, with issue paths. */
export function validatePolicy(raw: unknown): TrafficPolicy {
  const parsed = v.safeParse(TrafficPolicySpec, raw ?? {})
  if (parsed.success) return parsed.output
  throw new ConfigIssues(
    parsed.issues.map((i) => ({ code: CODES.ACTION_INVALID, path: issuePath(i), message: describeIssue(i) })),
  )
}

/**
 * Compiles a validated policy: checks phases against the endpoint's protocol, compiles CEL and
 * templates, builds every action. Throws `ConfigIssues` listing every problem at once.
 */
export function compilePolicy(spec: TrafficPolicy, options: CompileOptions): CompiledPolicy {
  const issues: ConfigIssue[] = []
  const isHttp = options.scheme === 'http' || options.scheme === 'https'
  const out: Record<Phase, CompiledRule[]> = { on_tcp_connect: [], on_http_request: [], on_http_response: [] }
  let terminates = false

  for (const phase of PHASES) {
    const rules = spec[phase]
    if (!isHttp && HTTP_PHASES.has(phase) && rules.length) {
      issues.push({
        code: CODES.ACTION_INVALID,
        path: [phase],
        message: `${phase} does not apply to ${options.scheme}:// endpoints (only on_tcp_connect does)`,
      })
      continue
    }
    rules.forEach((rule, r) => {
      const conditions: CelProgram[] = []
      rule.expressions.forEach((expr, e) => {
        const compiled = compileCel(expr, [phase, r, 'expressions', e], 'bool')
        if ('issue' in compiled) issues.push(compiled.issue)
        else conditions.push(compiled.program)
      })
      const actions: ActionRun[] = []
      rule.actions.forEach((action, a) => {
        const path = [phase, r, 'actions', a] as const
        const def = ACTIONS_BY_TYPE.get(action.type)
        if (!def) return // the schema already reported it
        if (!def.phases.includes(phase)) {
          issues.push({
            code: CODES.ACTION_INVALID,
            path: [...path, 'type'],
            message: `action "${def.type}" cannot run in ${phase} (it runs in ${def.phases.join(', ')})`,
          })
          return
        }
        const terminating = typeof def.terminating === 'function' ? def.terminating(action.config) : def.terminating
        if (terminating && (phase === 'on_http_request' || phase === 'on_tcp_connect')) terminates = true
        const env = {
          phase,
          scheme: options.scheme,
          template(text: string, at: readonly (string | number)[]) {
            const tpl = compileTemplate(text, [...path, ...at])
            if (Array.isArray(tpl)) {
              issues.push(...tpl)
              return { constant: true, render: () => '' }
            }
            return tpl
          },
          expression(text: string, at: readonly (string | number)[]) {
            const compiled = compileCel(text, [...path, ...at], 'any')
            if ('issue' in compiled) {
              issues.push(compiled.issue)
              return () => undefined
            }
            return compiled.program
          },
        }
        try {
          actions.push(def.build(action.config, env))
        } catch (err) {
          issues.push({
            code: CODES.ACTION_INVALID,
            path: [...path, 'config'],
            message: `action "${def.type}": ${err instanceof Error ? err.message : String(err)}`,
          })
        }
      })
      out[phase].push({ name: rule.name ?? `rule ${r + 1}`, conditions, actions })
    })
  }

  if (options.cloud && !terminates) {
    issues.push({
      code: CODES.POLICY_NOT_TERMINATED,
      path: [],
      message: `a cloud endpoint's traffic policy must contain a terminating action in ${isHttp ? 'on_http_request' : 'on_tcp_connect'} (e.g. ${isHttp ? 'custom-response or forward-external' : 'forward-external'})`,
    })
  }
  if (issues.length) throw new ConfigIssues(issues)
  return out
}

function matches(rule: CompiledRule, ex: HttpExchange): boolean {
  if (rule.conditions.length === 0) return true
  // Built per rule: earlier actions may have changed headers or vars the expressions read.
  const ctx = celContext(ex)
  for (const cond of rule.conditions) {
    try {
      if (cond(ctx) !== true) return false
    } catch (err) {
      log.debug('policy expression failed; rule skipped', { rule: rule.name, error: String(err) })
      return false
    }
  }
  return true
}

/** Runs one phase's rules in order; the first terminating outcome ends the phase. */
export async function runPhase(rules: readonly CompiledRule[], ex: HttpExchange): Promise<Outcome> {
  for (const rule of rules) {
    if (!matches(rule, ex)) continue
    for (const action of rule.actions) {
      let outcome = action(ex)
      if (outcome instanceof Promise) outcome = await outcome
      if (outcome.kind !== 'continue') return outcome
    }
  }
  return CONTINUE
}
