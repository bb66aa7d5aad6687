import * as v from 'valibot'
import { ACTIONS } from '../../../policy/actions/index.ts'

function actionSchema(def: (typeof ACTIONS)[number]) {
  const configOptional = v.safeParse(def.config, {}).success
  return v.strictObject({
    /** Action type. */
    type: v.literal(def.type),
    /** Action configuration. */
    config: configOptional ? v.optional(def.config, {}) : def.config,
  })
}

const KNOWN = ACTIONS.map((a) => a.type).join(', ')

/** One action of a rule: `type` picks the action, `config` is checked by that action's own schema. */
export const ActionSpec = v.variant(
  'type',
  ACTIONS.map(actionSchema) as unknown as [ReturnType<typeof actionSchema>],
  (issue) => `unknown action type ${JSON.stringify(issue.input)} (known: ${KNOWN})`,
)

/** A rule: when every expression is true (or there are none), its actions run in order. */
export const RuleSpec = v.strictObject({
  /** Shown in logs and explain output. */
  name: v.optional(v.string()),
  /** CEL expressions; all must be true. */
  expressions: v.optional(v.array(v.string()), []),
  /** Actions run in order; a terminating action ends the phase. */
  actions: v.optional(v.array(ActionSpec), []),
})

const Rules = v.optional(v.array(RuleSpec), [])

/** A traffic policy in ngrok's format. */
export const TrafficPolicySpec = v.strictObject({
  /** Runs once per TCP connection (tcp and tls endpoints, and public http/https). */
  on_tcp_connect: Rules,
  /** Runs for every HTTP request before it is forwarded. */
  on_http_request: Rules,
  /** Runs for every HTTP response before it returns to the client. */
  on_http_response: Rules,
  /** Runs for every message of a `text/event-stream` answer, as it streams to the client. */
  on_event_stream_message: Rules,
})

export type TrafficPolicy = v.InferOutput<typeof TrafficPolicySpec>
export type Rule = v.InferOutput<typeof RuleSpec>
