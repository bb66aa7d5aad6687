import { celStatement, type CelProgram } from './expr/compile.ts'
import { FAST_RUNTIME, FastGenerator } from './expr/fast.ts'
import type { ActionRun, HttpExchange, Outcome } from './types.ts'
import type { RunOptions } from './engine.ts'

/*
 * One generated JavaScript function per phase: the rules' conditions and action calls written out in
 * order, so a request runs straight-line code instead of the engine's loops over rules, conditions
 * and actions, with each condition's fast form (expr/fast.ts, made from its checked AST) inlined where
 * it is tested. Nothing a policy author wrote becomes code: the fast generator writes literals with
 * JSON.stringify and takes numbers as constants; rule names, templates and header names stay inside
 * the action closures and the engine's runtime, which the code reaches only by index.
 */

/** What a rule needs from the generated code: its conditions and its (already built) actions. */
export interface PhaseRule {
  conditions: readonly CelProgram[]
  actions: readonly ActionRun[]
}

/** The engine's part of a run, handed to the generated function (engine.ts makes one per phase). */
export interface PhaseRuntime {
  /** Condition `k` of rule `r` through its full program: its value, or undefined when it failed (the rule is skipped). */
  condition(r: number, k: number, context: Record<string, unknown>): unknown
  /** The outcome of action `a` of rule `r` that threw: a 500 for a failed `${…}`, else the error goes on. */
  failed(err: unknown, ex: HttpExchange, options: RunOptions): Outcome
  /** Action `a` of rule `r` returned a promise: the rest of the phase runs when it settles. */
  resume(pending: Promise<Outcome>, ex: HttpExchange, options: RunOptions, r: number, a: number): Promise<Outcome>
  continue: Outcome
}

export type PhaseRun = (ex: HttpExchange, options: RunOptions) => Outcome | Promise<Outcome>

/** The source of a phase's function and the constants its fast code reads (for tests). */
export function phaseSource(rules: readonly PhaseRule[]): { source: string; constants: unknown[] } {
  const gen = new FastGenerator({ exchange: true })
  const body: string[] = []
  rules.forEach((rule, r) => {
    const block: string[] = []
    rule.conditions.forEach((program, k) => {
      // A condition the fast code declines (or that fails) goes through its full program, as the engine's loop does.
      block.push(celStatement(gen, program, 'm', `X.condition(${r}, ${k}, rt.context(ex))`))
      block.push(`if (m !== true) break r${r}`)
    })
    rule.actions.forEach((_, a) => {
      block.push(`try { o = A[${r}][${a}](ex) } catch (err) { o = X.failed(err, ex, options) }`)
      block.push(`if (o.kind !== 'continue') return o instanceof Promise ? X.resume(o, ex, options, ${r}, ${a}) : o`)
    })
    body.push(`r${r}: {\n    ${block.join('\n    ')}\n  }`)
  })
  const temps = Array.from({ length: gen.temps }, (_, i) => `t${i}`)
  const locals = ['m', 'o', ...temps].join(', ')
  const source = `'use strict'\nreturn function generatedPhase(ex, options) {\n  let ${locals}\n  ${body.join('\n  ')}\n  return X.continue\n}`
  return { source, constants: gen.constants }
}

/** The phase's generated function, made once when the policy loads. */
export function generatePhase(rules: readonly PhaseRule[], runtime: PhaseRuntime): PhaseRun {
  const { source, constants } = phaseSource(rules)
  // The source is built only from fixed templates, indexes and the fast generator's output (see above).
  const factory = new Function('rt', 'K', 'X', 'A', source) as (
    rt: typeof FAST_RUNTIME,
    constants: readonly unknown[],
    runtime: PhaseRuntime,
    actions: readonly (readonly ActionRun[])[],
  ) => PhaseRun
  return factory(FAST_RUNTIME, Object.freeze(constants), runtime, rules.map((rule) => rule.actions))
}
