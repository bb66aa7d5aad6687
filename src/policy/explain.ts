import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import * as v from 'valibot'
import { describeIssue, issuePath, parseSource, type FileIssue } from '../config/document.ts'
import { EndpointSpec as PolicyEndpointSpec } from '../config/schema/v1/endpoint.ts'
import { CODES } from '../lib/errors.ts'
import { celContext } from './context.ts'
import type { TraceEvent } from './engine.ts'
import { compileCel } from './expr/compile.ts'
import { operandTexts } from './expr/operands.ts'
import { toPlain } from './expr/values.ts'
import {
  exchangeFor,
  fixturePolicy,
  FixtureSpec,
  policyFromText,
  preparePolicy,
  simulate,
  type EndpointInput,
  type PolicyUnderTest,
  type RequestInput,
  type UpstreamInput,
} from './test-runner.ts'
import { PHASES, type HttpExchange, type Outcome, type Phase } from './types.ts'

/*
 * `warren policy explain`: one request through a policy, rule by rule. For every expression it prints
 * the result and the values of what the expression read (`req.url.path = "/admin"`), and which action
 * ended each phase.
 */

export interface ExplainSource {
  /** Endpoint URL for a bare traffic policy file, or which endpoint of a policies file. */
  endpoint?: string | undefined
  /**
   * Makes the endpoint an agent endpoint forwarding to this upstream when no action ends the request
   * (a bare traffic policy file always is one, by default to http://127.0.0.1:80).
   */
  upstream?: string | undefined
}

/** Where an agent endpoint's requests go when explaining a bare traffic policy file without `--upstream`. */
const DEFAULT_UPSTREAM = 'http://127.0.0.1:80'

const FixtureForExplain = v.object({ ...FixtureSpec.entries, cases: v.optional(v.array(v.unknown()), []) })

/**
 * Loads the policy of a fixture (`policy:` + `endpoint:`), a policies file (`endpoints:` or `url:`,
 * the endpoint picked by `source.endpoint` or the first) or a bare traffic policy file.
 */
export function loadExplainPolicy(file: string, source: ExplainSource = {}): PolicyUnderTest | { issues: FileIssue[] } {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    return { issues: [{ file, line: 1, col: 1, code: CODES.POLICY_FILE_MISSING, message: `cannot read: ${(err as Error).message}` }] }
  }
  const parsed = parseSource(text)
  if ('errors' in parsed) return { issues: parsed.errors.map((e) => ({ file, ...e, code: e.code ?? CODES.POLICY_FILE_SYNTAX })) }
  const doc = parsed.doc
  const value = (doc.value ?? {}) as Record<string, unknown>
  const at = (path: readonly (string | number)[]) => ({ file, ...doc.locate(path) })
  const schemaIssues = (issues: v.BaseIssue<unknown>[], prefix: (string | number)[] = []) => ({
    issues: issues.map((i) => ({ ...at([...prefix, ...issuePath(i)]), code: CODES.POLICY_FILE_SCHEMA, message: describeIssue(i) })),
  })

  if (typeof value === 'object' && ('policy' in value || 'policy_file' in value)) {
    const fixture = v.safeParse(FixtureForExplain, value)
    if (!fixture.success) return schemaIssues(fixture.issues)
    const endpoint: EndpointInput = { ...fixture.output.endpoint }
    if (source.endpoint) endpoint.url = source.endpoint
    if (source.upstream) endpoint.upstream = source.upstream
    return fixturePolicy(file, doc, { ...fixture.output, endpoint })
  }

  if (typeof value === 'object' && ('endpoints' in value || 'url' in value)) {
    const list = Array.isArray(value['endpoints']) ? (value['endpoints'] as unknown[]) : [value]
    const prefix = (i: number) => (Array.isArray(value['endpoints']) ? ['endpoints', i] : [])
    const decls = list.map((d) => v.safeParse(PolicyEndpointSpec, d))
    const index = source.endpoint
      ? decls.findIndex((d) => d.success && d.output.url.replace(/\/$/, '') === source.endpoint!.replace(/\/$/, ''))
      : 0
    if (index === -1) return { issues: [{ file, line: 1, col: 1, code: CODES.POLICY_FILE_SCHEMA, message: `no endpoint with url ${source.endpoint} in this file` }] }
    const decl = decls[index]
    if (!decl) return { issues: [{ file, line: 1, col: 1, code: CODES.POLICY_FILE_SCHEMA, message: 'the file declares no endpoint' }] }
    if (!decl.success) return schemaIssues(decl.issues, prefix(index))
    const endpoint: EndpointInput = { url: decl.output.url, ...(decl.output.binding ? { binding: decl.output.binding } : {}), ...(source.upstream ? { upstream: source.upstream } : {}) }
    const path = [...prefix(index), 'traffic_policy']
    if (decl.output.traffic_policy_file !== undefined) {
      const full = resolve(dirname(file), decl.output.traffic_policy_file)
      try {
        return policyFromText(full, readFileSync(full, 'utf8'), endpoint)
      } catch (err) {
        return { issues: [{ ...at([...prefix(index), 'traffic_policy_file']), code: CODES.POLICY_FILE_MISSING, message: (err as Error).message }] }
      }
    }
    const raw = decl.output.traffic_policy
    if (typeof raw === 'string') {
      const sub = parseSource(raw)
      if ('errors' in sub) return { issues: sub.errors.map((e) => ({ ...at(path), code: e.code ?? CODES.POLICY_FILE_SYNTAX, message: e.message })) }
      return preparePolicy(sub.doc.value, endpoint, () => at(path))
    }
    return preparePolicy(raw ?? {}, endpoint, (p) => at([...path, ...p]))
  }

  // A bare traffic policy file is what an agent endpoint takes: requests no action ends go upstream.
  const endpoint: EndpointInput = { url: source.endpoint ?? 'https://example.com', upstream: source.upstream ?? DEFAULT_UPSTREAM }
  return preparePolicy(value, endpoint, at)
}

function show(value: unknown): string {
  const plain = toPlain(value)
  return typeof plain === 'string' ? JSON.stringify(plain) : JSON.stringify(plain) ?? String(plain)
}

function describeOutcome(outcome: Outcome): string {
  switch (outcome.kind) {
    case 'continue':
      return 'continue'
    case 'close':
      return 'close the connection'
    case 'forward':
      return `forward to ${outcome.target.url.href.replace(/\/$/, '')}${outcome.target.kind === 'internal' ? ' (internal endpoint)' : ''}`
    case 'respond': {
      const code = outcome.response.headers.get('warren-error-code')
      return `respond ${outcome.response.status}${code ? ` ${code}` : ''}`
    }
  }
}

interface Operand {
  text: string
  value?: unknown
  error?: string
}

type Recorded = { event: TraceEvent; operands: Operand[][] }

/** Values of what each evaluated expression read, from the same variables the rule saw. */
function operandValues(test: PolicyUnderTest, phase: Phase, event: Extract<TraceEvent, { type: 'rule' }>, ex: HttpExchange): Operand[][] {
  const ctx = celContext(ex)
  const rule = test.spec[phase][event.rule]
  return event.conditions.map((_c, e) =>
    operandTexts(rule?.expressions[e] ?? '', phase).map((text) => {
      const compiled = compileCel(text, [phase], 'any', { phase })
      if ('issue' in compiled) return { text, error: 'cannot be evaluated on its own' }
      try {
        return { text, value: compiled.program(ctx) }
      } catch (err) {
        return { text, error: err instanceof Error ? err.message : String(err) }
      }
    }),
  )
}

/** Runs `request` through the policy and explains every step, one line per string. */
export async function explainRequest(test: PolicyUnderTest, request: RequestInput, options: { upstream?: UpstreamInput } = {}): Promise<string[]> {
  const ex = exchangeFor(request, test.endpoint)
  const recorded: Record<Phase, Recorded[]> = { on_tcp_connect: [], on_http_request: [], on_http_response: [], on_event_stream_message: [] }
  const ran = new Set<Phase>()
  const sim = await simulate(test, ex, {
    ...(options.upstream ? { upstream: options.upstream } : {}),
    trace(phase, event) {
      ran.add(phase)
      recorded[phase].push({ event, operands: event.type === 'rule' ? operandValues(test, phase, event, ex) : [] })
    },
  })

  const lines: string[] = [
    `endpoint ${test.endpoint.url} (${test.upstream ? `agent endpoint, upstream ${test.upstream.href.replace(/\/$/, '')}` : 'cloud endpoint'})`,
    `request  ${ex.method} ${ex.url.href}  from ${ex.conn.clientIp}`,
  ]
  let ended: string | undefined
  for (const phase of PHASES) {
    const rules = test.spec[phase]
    lines.push('')
    if (rules.length === 0) {
      lines.push(`${phase}: no rules`)
      continue
    }
    // It runs per message while a body streams, and explain reads no body: `warren policy test` can.
    if (phase === 'on_event_stream_message') {
      lines.push(`${phase}: runs for each message of a text/event-stream answer (not simulated here; use warren policy test)`)
      continue
    }
    if (!ran.has(phase)) {
      lines.push(`${phase}: not run${ended ? ` (${ended})` : ''}`)
      continue
    }
    lines.push(`${phase}:`)
    const events = recorded[phase]
    rules.forEach((rule, r) => {
      const name = rule.name ? ` "${rule.name}"` : ''
      const seen = events.find((e) => e.event.type === 'rule' && e.event.rule === r)
      if (!seen || seen.event.type !== 'rule') {
        lines.push(`  rule ${r + 1}${name}: not reached (the phase had ended)`)
        return
      }
      const ev = seen.event
      lines.push(`  rule ${r + 1}${name}: ${ev.matched ? (rule.expressions.length ? 'matched' : 'matched (no expressions)') : 'skipped'}`)
      rule.expressions.forEach((expr, e) => {
        const result = ev.conditions[e]
        if (!result) {
          lines.push(`    expression ${e + 1}: ${expr}  → not evaluated (an earlier expression was not true)`)
          return
        }
        const verdict = 'error' in result ? `error: ${result.error}` : show(result.value)
        lines.push(`    expression ${e + 1}: ${expr}  → ${verdict}`)
        for (const op of seen.operands[e] ?? []) lines.push(`      ${op.text} = ${op.error !== undefined ? `(error: ${op.error})` : show(op.value)}`)
      })
      if (!ev.matched) return
      rule.actions.forEach((action, a) => {
        const done = events.find((x) => x.event.type === 'action' && x.event.rule === r && x.event.action === a)
        if (!done || done.event.type !== 'action') {
          lines.push(`    action ${a + 1}: ${action.type}  → not run`)
          return
        }
        const outcome = done.event.outcome
        const ends = outcome.kind !== 'continue'
        lines.push(`    action ${a + 1}: ${action.type}  → ${describeOutcome(outcome)}${ends ? ' (ends the phase)' : ''}`)
        if (done.event.error !== undefined) lines.push(`      because: ${done.event.error}`)
        if (ends) ended = `${action.type} in ${phase} rule ${r + 1} ended the request`
      })
    })
  }
  lines.push('')
  if (!sim.response) lines.push('result: the connection is closed without an answer')
  else {
    const code = sim.response.headers.get('warren-error-code')
    const forwarded = sim.forwarded ? `forwarded to ${sim.forwarded.to} (${sim.forwarded.url}); ` : ''
    lines.push(`result: ${forwarded}the client gets ${sim.response.status}${code ? ` ${code}` : ''}`)
  }
  return lines
}
