import * as v from 'valibot'
import { describeIssue, issuePath } from '../config/document.ts'
import { TrafficPolicySpec, type TrafficPolicy } from '../config/schema/v1/policy.ts'
import type { Scheme } from '../config/url.ts'
import { CODES, WarrenError } from '../lib/errors.ts'
import { log } from '../lib/log.ts'
import { errorResponse } from '../proxy/errors.ts'
import { ACTIONS_BY_TYPE } from './actions/index.ts'
import { celContext, forgetHeaderVariables, forgetVariables } from './context.ts'
import { compileCel, type CelProgram } from './expr/compile.ts'
import { compileTemplate, constantTemplate } from './interpolate.ts'
import { ConfigIssues, type ConfigIssue } from './issue.ts'
import { generatePhase, type PhaseRun } from './phase-code.ts'
import { CONTINUE, PHASES, type ActionRun, type ClusterScope, type HttpExchange, type Outcome, type Phase } from './types.ts'

export interface CompiledRule {
  name: string
  conditions: CelProgram[]
  actions: ActionRun[]
}

/** A traffic policy turned into closures: nothing is parsed per request. */
export type CompiledPolicy = Readonly<Record<Phase, readonly CompiledRule[]>>

export const EMPTY_POLICY: CompiledPolicy = { on_tcp_connect: [], on_http_request: [], on_http_response: [], on_event_stream_message: [] }

const HTTP_PHASES: ReadonlySet<Phase> = new Set(['on_http_request', 'on_http_response', 'on_event_stream_message'])

export interface CompileOptions {
  scheme: Scheme
  /** Cloud endpoints must end every request in a terminating action (ngrok 6029). */
  cloud: boolean
  /** Handed to actions as `BuildEnv.sessionKey`: set on the edge, absent where policies are only checked. */
  sessionKey?: Uint8Array | undefined
  /** Handed to actions as `BuildEnv.clusterScope` (rate-limit `scope: cluster`). */
  clusterScope?: ClusterScope | undefined
}

/** Validates a raw policy (already parsed from YAML/JSON) against the schema, with issue paths. */
export function validatePolicy(raw: unknown): TrafficPolicy {
  const parsed = v.safeParse(TrafficPolicySpec, raw ?? {})
  if (parsed.success) return parsed.output
  throw new ConfigIssues([
    ...parsed.issues.map((i) => ({ code: CODES.ACTION_INVALID, path: issuePath(i), message: describeIssue(i) })),
    // compilePolicy never sees a policy that fails the schema: its expressions are checked here, so
    // one round of fixes is enough (a CEL mistake is not hidden behind an unknown action type).
    ...expressionIssues(raw),
  ])
}

/** CEL errors of every `expressions` string in a raw policy, wherever the schema failed. */
function expressionIssues(raw: unknown): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  if (typeof raw !== 'object' || raw === null) return issues
  for (const phase of PHASES) {
    const rules = (raw as Record<string, unknown>)[phase]
    if (!Array.isArray(rules)) continue
    rules.forEach((rule: unknown, r) => {
      const expressions = typeof rule === 'object' && rule !== null ? (rule as { expressions?: unknown }).expressions : undefined
      if (!Array.isArray(expressions)) return
      expressions.forEach((expr: unknown, e) => {
        if (typeof expr !== 'string') return
        const compiled = compileCel(expr, [phase, r, 'expressions', e], 'bool')
        if ('issue' in compiled) issues.push(compiled.issue)
      })
    })
  }
  return issues
}

/**
 * Compiles a validated policy: checks phases against the endpoint's protocol, compiles CEL and
 * templates, builds every action. Throws `ConfigIssues` listing every problem at once.
 */
export function compilePolicy(spec: TrafficPolicy, options: CompileOptions): CompiledPolicy {
  const issues: ConfigIssue[] = []
  const isHttp = options.scheme === 'http' || options.scheme === 'https'
  const out: Record<Phase, CompiledRule[]> = { on_tcp_connect: [], on_http_request: [], on_http_response: [], on_event_stream_message: [] }
  let terminates = false
  const readsResults = readsActionResults(spec)

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
          path,
          ...(options.sessionKey ? { sessionKey: options.sessionKey } : {}),
          ...(options.clusterScope ? { clusterScope: options.clusterScope } : {}),
          readsActionResults: readsResults,
          template(text: string, at: readonly (string | number)[]) {
            const tpl = compileTemplate(text, [...path, ...at])
            if (Array.isArray(tpl)) {
              issues.push(...tpl)
              return constantTemplate('')
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
          const run = def.build(action.config, env)
          if (def.readOnly) actions.push(run)
          else if (def.changes === 'headers') {
            const response = phase === 'on_http_response'
            actions.push(forgetting(run, (ex) => forgetHeaderVariables(ex, response)))
          } else actions.push(forgetting(run, forgetVariables))
        } catch (err) {
          issues.push({
            // An action that cannot run here (a missing library) says so with its own code.
            code: err instanceof WarrenError ? err.code : CODES.ACTION_INVALID,
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
  // Each phase's function is generated now, at load, not on the first request.
  for (const phase of PHASES) if (out[phase].length) phaseRun(out[phase])
  const relay = relayPlanOf(spec, out)
  if (relay) RELAY_PLANS.set(out, relay)
  return out
}

/**
 * True when an expression or a config string of `spec` names `actions` anywhere: a template or a
 * condition may then read action results (`actions.ngrok.add_headers…`). A word match over the text,
 * so a false positive only keeps results that are never read.
 */
function readsActionResults(spec: TrafficPolicy): boolean {
  const word = /\bactions\b/
  for (const phase of PHASES)
    for (const rule of spec[phase]) {
      if (rule.expressions.some((expr) => word.test(expr))) return true
      if (rule.actions.some((action) => word.test(JSON.stringify(action.config ?? null)))) return true
    }
  return false
}

/**
 * What the HTTP/1.1 engine's byte relay may do for an endpoint without the pipeline's Request and
 * Response: forward every request unchanged to `url`, or (no url, no rules) hand it to the
 * endpoint's agent; or run `rules`, the endpoint's on_http_request, on an exchange made from the
 * request head (src/proxy/relay-exchange.ts) and relay where they forward. Decided once per compiled
 * policy: no on_http_response or on_event_stream_message, and every on_http_request action one of
 * RELAY_ACTIONS. Anything else needs the exchange and takes the pipeline.
 */
export interface RelayPlan {
  url?: URL
  rules?: readonly CompiledRule[]
}

/**
 * Fields the edge itself decides on the upstream request (routing, framing, Expect): a policy that
 * adds or removes one keeps the pipeline, whose client handles them (a replaced Host also rewrites
 * `Location` in the answer).
 */
const EDGE_DECIDES: ReadonlySet<string> = new Set(['host', 'content-length', 'transfer-encoding', 'expect'])

function leavesEdgeFields(names: readonly string[]): boolean {
  return names.every((name) => !EDGE_DECIDES.has(name.toLowerCase()))
}

/**
 * The on_http_request actions the relay's exchange can run, each with the check of its config: they
 * read the request head, change only its header lines, set variables, forward to an http://
 * upstream, or answer from the edge. None has an effect outside the exchange, so the pipeline may run
 * the rules again for a request the relay leaves to it (an answer after a request body).
 */
const RELAY_ACTIONS: ReadonlyMap<string, (config: unknown) => boolean> = new Map([
  ['add-headers', (config: unknown) => leavesEdgeFields(Object.keys((config as { headers: Record<string, string> }).headers))],
  ['remove-headers', (config: unknown) => leavesEdgeFields((config as { headers: string[] }).headers)],
  ['set-vars', () => true],
  ['forward-external', (config: unknown) => new URL((config as { url: string }).url).protocol === 'http:'],
  ['deny', () => true],
  ['custom-response', () => true],
])

const RELAY_PLANS = new WeakMap<CompiledPolicy, RelayPlan>()
RELAY_PLANS.set(EMPTY_POLICY, {})

/** The relay plan of a compiled policy, if it has one (see RelayPlan). */
export function relayPlan(policy: CompiledPolicy): RelayPlan | undefined {
  return RELAY_PLANS.get(policy)
}

function relayPlanOf(spec: TrafficPolicy, policy: CompiledPolicy): RelayPlan | undefined {
  if (spec.on_http_response.length || spec.on_event_stream_message.length) return undefined
  const rules = spec.on_http_request
  if (rules.length === 0) return {}
  const only = rules[0]!
  const action = only.actions[0]
  if (rules.length === 1 && !only.expressions.length && only.actions.length === 1 && action?.type === 'forward-external') {
    const url = new URL((action.config as { url: string }).url)
    return url.protocol === 'http:' ? { url } : undefined
  }
  for (const rule of rules) for (const { type, config } of rule.actions) if (!RELAY_ACTIONS.get(type)?.(config)) return undefined
  return { rules: policy.on_http_request }
}

/** Runs `run`, then `forget`s the exchange's CEL variables the action may have changed. */
function forgetting(run: ActionRun, forget: (ex: HttpExchange) => void): ActionRun {
  return function runAndForget(ex) {
    const outcome = run(ex)
    if (outcome instanceof Promise) return outcome.finally(() => forget(ex))
    forget(ex)
    return outcome
  }
}

/** What one rule expression gave while `runPhase` ran with `trace` (for `warren policy explain`). */
export type ConditionResult = { value: unknown } | { error: string }

/** Reported by `runPhase` when `options.trace` is set: every rule looked at and every action run. */
export type TraceEvent =
  | { type: 'rule'; rule: number; name: string; matched: boolean; conditions: ConditionResult[] }
  /** `error`: why the action failed when the failure became the outcome (a 500 with ERR_WARREN_3900). */
  | { type: 'action'; rule: number; action: number; outcome: Outcome; error?: string }

export interface RunOptions {
  trace?: (event: TraceEvent) => void
  /**
   * No warning for a `${…}` that failed: the run is the byte relay's (src/proxy/relay-route.ts) for a
   * request whose answer it leaves to the pipeline, which runs the phase again and warns once.
   */
  quiet?: boolean
}

function matches(rule: CompiledRule, ex: HttpExchange, trace?: ConditionResult[]): boolean {
  if (rule.conditions.length === 0) return true
  const ctx = celContext(ex)
  for (const cond of rule.conditions) {
    let value: unknown
    try {
      value = cond(ctx)
    } catch (err) {
      // The message is only worked out for someone who reads it (a failing rule is common: a missing header).
      if (log.enabled('debug')) log.debug('policy expression failed; rule skipped', { rule: rule.name, error: String(err) })
      trace?.push({ error: err instanceof Error ? err.message : String(err) })
      return false
    }
    trace?.push({ value })
    if (value !== true) return false
  }
  return true
}

/** A `${…}` that failed for this request ends the phase with a 500 naming the code (ngrok 3900). */
function evaluationFailure(err: unknown, ex: HttpExchange, quiet: boolean): Outcome | undefined {
  if (!(err instanceof WarrenError) || err.code !== CODES.POLICY_EVAL_FAILED) return undefined
  if (!quiet) log.warn('traffic policy evaluation failed', { endpoint: ex.endpoint.url, error: err.message })
  const response = errorResponse(err.status ?? 500, err.code, "The endpoint's traffic policy failed while handling this request.", ex.headers.get('accept'))
  return { kind: 'respond', response }
}

const PHASE_RUNS = new WeakMap<readonly CompiledRule[], PhaseRun>()

/** The generated function of a phase's rules (phase-code.ts), made on first use and kept. */
function phaseRun(rules: readonly CompiledRule[]): PhaseRun {
  let run = PHASE_RUNS.get(rules)
  if (run) return run
  run = generatePhase(rules, {
    condition(r, k, context) {
      const rule = rules[r]!
      try {
        return rule.conditions[k]!(context)
      } catch (err) {
        if (log.enabled('debug')) log.debug('policy expression failed; rule skipped', { rule: rule.name, error: String(err) })
        return undefined
      }
    },
    failed: failedAction,
    resume: (pending, ex, options, r, a) => afterPromise(pending, rules, ex, options, r, a),
    continue: CONTINUE,
  })
  PHASE_RUNS.set(rules, run)
  return run
}

/**
 * Runs one phase's rules in order; the first terminating outcome ends the phase. Synchronous until an
 * action returns a promise (most never do), so a phase of plain actions costs no promise of its own.
 * Runs the phase's generated function (phase-code.ts); a traced run (`warren policy explain`) takes
 * the loop below, which reports every step.
 */
export function runPhase(rules: readonly CompiledRule[], ex: HttpExchange, options: RunOptions = {}): Outcome | Promise<Outcome> {
  // The data path or an earlier phase may have changed the exchange since variables were computed.
  forgetVariables(ex)
  if (options.trace) return runFrom(rules, ex, options, 0, 0)
  return rules.length === 0 ? CONTINUE : phaseRun(rules)(ex, options)
}

/** The outcome of an action that threw: a 500 for a failed `${…}`, else the error goes on. */
function failedAction(err: unknown, ex: HttpExchange, options: RunOptions): Outcome {
  const failed = evaluationFailure(err, ex, options.quiet === true)
  if (!failed) throw err
  return failed
}

/** Reports an action's outcome to the trace; true when it ends the phase. */
function ends(r: number, a: number, outcome: Outcome, error: unknown, options: RunOptions): boolean {
  options.trace?.({ type: 'action', rule: r, action: a, outcome, ...(error === undefined ? {} : { error: (error as Error).message }) })
  return outcome.kind !== 'continue'
}

/** Action `a` of rule `r` returned `pending`: reports it when it settles, then runs the rest of the phase. */
function afterPromise(pending: Promise<Outcome>, rules: readonly CompiledRule[], ex: HttpExchange, options: RunOptions, r: number, a: number): Promise<Outcome> {
  return pending.then(
    (done) => (ends(r, a, done, undefined, options) ? done : runFrom(rules, ex, options, r, a + 1)),
    (err: unknown) => {
      const failed = failedAction(err, ex, options)
      return ends(r, a, failed, err, options) ? failed : runFrom(rules, ex, options, r, a + 1)
    },
  )
}

/** Runs from action `first` of rule `start` (its expressions already matched when `first` > 0). */
function runFrom(rules: readonly CompiledRule[], ex: HttpExchange, options: RunOptions, start: number, first: number): Outcome | Promise<Outcome> {
  const { trace } = options
  // Indexed loops: an entries() iterator per rule and per action was a visible share of a phase.
  for (let r = start; r < rules.length; r++) {
    const rule = rules[r]!
    if (r !== start || first === 0) {
      const conditions: ConditionResult[] | undefined = trace ? [] : undefined
      const matched = matches(rule, ex, conditions)
      trace?.({ type: 'rule', rule: r, name: rule.name, matched, conditions: conditions! })
      if (!matched) continue
    }
    const actions = rule.actions
    for (let a = r === start ? first : 0; a < actions.length; a++) {
      let outcome: Outcome | Promise<Outcome>
      let error: unknown
      try {
        outcome = actions[a]!(ex)
      } catch (err) {
        outcome = failedAction(err, ex, options)
        error = err
      }
      if (outcome instanceof Promise) return afterPromise(outcome, rules, ex, options, r, a)
      if (ends(r, a, outcome, error, options)) return outcome
    }
  }
  return CONTINUE
}
