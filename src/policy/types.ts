import type * as v from 'valibot'
import type { Binding, Scheme } from '../config/url.ts'
import type { Template } from './interpolate.ts'

/** The phases a traffic policy can hook; `on_event_stream_message` is reserved and rejected for now. */
export const PHASES = ['on_tcp_connect', 'on_http_request', 'on_http_response'] as const
export type Phase = (typeof PHASES)[number]

/** What policy code may know about the endpoint a request arrived on (`endpoint.*` in CEL). */
export interface EndpointInfo {
  id: string
  url: string
  scheme: Scheme
  host: string
  port: number
  binding: Binding
}

/** The connection under a request (`conn.*` in CEL). */
export interface ConnInfo {
  clientIp: string
  clientPort: number
  serverIp: string
  serverPort: number
  startedAt: number
}

/**
 * One HTTP request as it moves through the phases. Actions change `url` and `headers` in place:
 * what is left at the end of on_http_request is what the upstream sees.
 */
export interface HttpExchange {
  readonly endpoint: EndpointInfo
  readonly conn: ConnInfo
  readonly method: string
  /** The URL as the client asked for it at the edge (scheme, Host, path, query). */
  url: URL
  headers: Headers
  vars: Record<string, unknown>
  /** Result variables of actions that ran, exposed to CEL as `actions.ngrok.<name>` (e.g. `http_request`). */
  actions: Record<string, unknown>
  /** Metadata added by the `log` action; attached to this request's events. */
  logMetadata: Record<string, unknown>
  /** Set for on_http_response: the upstream's answer, headers mutable. */
  response?: { status: number; headers: Headers }
}

export type ForwardTarget = { kind: 'external'; url: URL }

export type Outcome =
  | { kind: 'continue' }
  | { kind: 'respond'; response: Response }
  | { kind: 'forward'; target: ForwardTarget }

export const CONTINUE: Outcome = Object.freeze({ kind: 'continue' })

export type ActionRun = (ex: HttpExchange) => Outcome | Promise<Outcome>

/** What an action's `build` gets besides its config: template compilation and where it runs. */
export interface BuildEnv {
  phase: Phase
  scheme: Scheme
  template(text: string, path: readonly (string | number)[]): Template
}

/** One traffic-policy action: its schema, the phases it may run in and its factory. */
export interface ActionDef<S extends v.GenericSchema = v.GenericSchema> {
  type: string
  phases: readonly Phase[]
  /** A terminating action ends its phase (ngrok's rule for custom-response, deny, forward-*, redirect…). */
  terminating: boolean
  config: S
  build(config: v.InferOutput<S>, env: BuildEnv): ActionRun
}

/** Keeps the config type of an action tied to its schema. */
export function defineAction<S extends v.GenericSchema>(def: ActionDef<S>): ActionDef<S> {
  return def
}
