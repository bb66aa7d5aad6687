import type { Endpoint } from '../endpoints/endpoint.ts'
import { runPhase } from '../policy/engine.ts'
import type { ConnInfo, HttpExchange, Outcome } from '../policy/types.ts'

/**
 * Runs an endpoint's on_tcp_connect rules for a new connection. The exchange has no request: only
 * `conn.*`, `endpoint.*` and `vars` mean something in this phase.
 */
export async function runTcpConnect(endpoint: Endpoint, conn: ConnInfo): Promise<{ outcome: Outcome; exchange: HttpExchange }> {
  const exchange: HttpExchange = {
    endpoint: endpoint.info,
    conn,
    method: '',
    url: new URL(endpoint.urlText.replace('*.', 'wildcard.')),
    headers: new Headers(),
    vars: {},
    actions: {},
    logMetadata: {},
  }
  const outcome = endpoint.policy.on_tcp_connect.length ? await runPhase(endpoint.policy.on_tcp_connect, exchange) : { kind: 'continue' as const }
  return { outcome, exchange }
}
