import * as v from 'valibot'
import { log } from '../../lib/log.ts'
import { messageData, setLineValue, setMessageData } from '../../lib/sse.ts'
import { celContext } from '../context.ts'
import { CONTINUE, defineAction } from '../types.ts'
import { applyRule, compileReplacements, ReplacementSpec, type Matched } from './request-body-find-replace.ts'

/** The fields ngrok lets this action change. */
const FIELDS = ['data', 'retry']

/**
 * Finds and replaces text in each server-sent event of a `text/event-stream` answer as it streams,
 * rule after rule, in the message's `data` (its data lines joined by `\n`, as EventSource delivers
 * it) or in each of its `retry` lines. Runs in on_event_stream_message (proxy/event-stream.ts).
 */
export const sseFindReplace = defineAction({
  type: 'sse-find-replace',
  phases: ['on_event_stream_message'],
  terminating: false,
  // It changes the message only, which no CEL variable describes.
  readOnly: true,
  config: v.strictObject({
    /** Rules applied in order, each to the result of the one before. At least one. */
    replacements: v.pipe(
      v.array(
        v.strictObject({
          /** `data` (default) or `retry`; `${…}` allowed. */
          field: v.optional(
            v.pipe(
              v.string(),
              v.check((f) => f.includes('${') || FIELDS.includes(f), 'must be "data" or "retry"'),
            ),
            'data',
          ),
          ...ReplacementSpec.entries,
        }),
      ),
      v.minLength(1, 'needs at least one replacement'),
    ),
  }),
  build(config, env) {
    const replacements = compileReplacements(config.replacements, env)
    const fields = config.replacements.map((r, i) => env.template(r.field, ['config', 'replacements', i, 'field']))
    return function sseFindReplace(ex) {
      const found: Matched[] = []
      ex.actions['sse_find_replace'] = { replacements: found }
      const message = ex.message
      if (!message) return CONTINUE
      const context = () => celContext(ex)
      const rules = replacements(context)
      if ('error' in rules) {
        log.debug('sse-find-replace skipped', { reason: rules.error })
        return CONTINUE
      }
      const seen = new Set<number>()
      rules.forEach((rule, i) => {
        const field = fields[i]!.render(context)
        if (field === 'data') {
          const data = messageData(message)
          if (data === undefined) return
          const next = applyRule(data, rule, i, found, seen)
          if (next !== data) setMessageData(message, next)
        } else if (field === 'retry') {
          for (const line of message.lines) {
            if (line.name !== 'retry') continue
            const next = applyRule(line.value, rule, i, found, seen)
            if (next !== line.value) setLineValue(message, line, next)
          }
        } else log.debug('sse-find-replace rule skipped', { reason: `field ${JSON.stringify(field)} is neither data nor retry` })
      })
      return CONTINUE
    }
  },
})
