import * as v from 'valibot'
import { CONTINUE, defineAction } from '../types.ts'
import { compileValue } from './set-vars.ts'

/** CEL values as JSON can carry them: ints become numbers (strings past 2^53), times ISO strings, bytes base64. */
export function toPlain(value: unknown): unknown {
  if (typeof value === 'bigint') return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString()
  if (value instanceof Date) return value.toISOString()
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64')
  if (value instanceof Map) return Object.fromEntries(Array.from(value, ([k, v]) => [String(k), toPlain(v)]))
  if (Array.isArray(value)) return value.map(toPlain)
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toPlain(v)]))
  return value
}

/**
 * Adds metadata to this request's log line (and the events built from it, later). Values are
 * templates, evaluated when the action runs; several log actions merge, later keys win.
 */
export const log = defineAction({
  type: 'log',
  phases: ['on_tcp_connect', 'on_http_request', 'on_http_response'],
  terminating: false,
  readOnly: true,
  config: v.strictObject({
    /** Key → value to log; values are any YAML value, strings may hold `${…}`. At least one key. */
    metadata: v.pipe(
      v.record(v.string(), v.unknown()),
      v.check((m) => Object.keys(m).length > 0, 'needs at least one key'),
    ),
  }),
  build(config, env) {
    const entries = Object.entries(config.metadata).map(([k, value]) => [k, compileValue(value, env, ['config', 'metadata', k])] as const)
    return function log(ex) {
      const metadata: Record<string, unknown> = {}
      for (const [k, value] of entries) metadata[k] = toPlain(value(ex))
      Object.assign(ex.logMetadata, metadata)
      ex.actions['log'] = { metadata }
      return CONTINUE
    }
  },
})
