import { Environment } from '@marcbachmann/cel-js'
import { FUNCTION_GROUPS } from '../policy/expr/env.ts'
import { originalOffset, publicNames, rewrite, type Edit } from '../policy/expr/rewrite.ts'
import { positionText } from '../policy/expr/compile.ts'
import type { WarrenEvent } from './types.ts'

/** A compiled event filter: true when the event passes. Never throws. */
export type EventFilter = (event: WarrenEvent) => boolean

/**
 * The environment of event filters: ngrok's `ev` (the event's `object`) plus `event_type`, with the
 * same function library as traffic policies (`matches` in RE2 syntax, `inCidrRange`, …).
 */
function buildEnvironment(): Environment {
  const env = new Environment({ homogeneousAggregateLiterals: false, enableOptionalTypes: true })
  for (const group of FUNCTION_GROUPS) group.register(env)
  env.registerVariable('ev', 'map')
  env.registerVariable('event_type', 'string')
  return env
}

let environment: Environment | undefined

function summaryOf(err: unknown, edits: readonly Edit[], expr: string): string {
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as { summary?: string; message?: string; range?: { start: number } }
  const summary = publicNames(e.summary ?? (e.message ?? String(err)).split('\n')[0] ?? '')
  return e.range ? `${summary} (at ${positionText(expr, originalOffset(edits, e.range.start))})` : summary
}

/**
 * Compiles a CEL filter over events, as ngrok's event subscriptions have them:
 * `ev.conn.server_name == "api.example.com" && ev.http.response.status_code >= 500`. A field the
 * event does not have makes the filter false for that event (so `ev.http…` skips tcp events).
 *
 * @example
 * const f = compileEventFilter('event_type == "tcp_connection_closed.v0" && ev.conn.bytes_in > 1000')
 * if ('filter' in f) f.filter(event)
 */
export function compileEventFilter(expr: string): { filter: EventFilter } | { error: string } {
  const env = (environment ??= buildEnvironment())
  let edits: readonly Edit[] = []
  try {
    const rewritten = rewrite(expr, env)
    edits = rewritten.edits
    const problem = rewritten.problems[0]
    if (problem) return { error: `invalid filter "${expr}": ${problem.message} (at ${positionText(expr, problem.offset)})` }
    const parsed = env.parse(rewritten.text)
    const checked = parsed.check()
    if (!checked.valid) return { error: `invalid filter "${expr}": ${summaryOf(checked.error, edits, expr)}` }
    if (checked.type !== 'bool' && checked.type !== 'dyn') return { error: `invalid filter "${expr}": it returns ${publicNames(checked.type ?? 'unknown')}, not bool` }
    const run = parsed as unknown as (context: Record<string, unknown>) => unknown
    return {
      filter: function eventFilter(event) {
        try {
          return run({ ev: event.object, event_type: event.event_type }) === true
        } catch {
          return false
        }
      },
    }
  } catch (err) {
    return { error: `invalid filter "${expr}": ${summaryOf(err, edits, expr)}` }
  }
}
