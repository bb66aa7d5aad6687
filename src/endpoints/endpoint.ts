import type { EndpointUrl } from '../config/url.ts'
import type { CompiledPolicy } from '../policy/engine.ts'
import type { EndpointInfo } from '../policy/types.ts'

/** An endpoint in the table: cloud (from policies/) or, later, agent (from a tunnel session). */
export interface Endpoint {
  readonly id: string
  readonly kind: 'cloud' | 'agent'
  readonly url: EndpointUrl
  /** Canonical URL text (`https://api.example.com`). */
  readonly urlText: string
  /** Port used for matching: the URL's own port or the scheme's public port. */
  readonly port: number
  readonly account: string
  readonly poolingEnabled: boolean
  /** Where it was declared (a policies file path) or which session created it. */
  readonly source: string
  /** Line and column of the declaration in `source` (1-based), for messages. */
  readonly position: { line: number; col: number }
  readonly description: string | undefined
  readonly metadata: unknown
  readonly policy: CompiledPolicy
  readonly info: EndpointInfo
}
