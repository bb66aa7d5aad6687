import type { EndpointTable, Pool } from '../endpoints/table.ts'
import type { TlsInfo } from '../policy/types.ts'

/**
 * True when a request on a connection the edge terminated asks for another endpoint than the one its
 * handshake was made for. Endpoints differ in certificate, TLS versions and client-certificate checks
 * (terminate-tls), so serving a Host other than the SNI's would hand one endpoint's content over
 * another's handshake — an mTLS bypass, also reachable by HTTP/2 connection coalescing. The rule is
 * "the Host must select the pool the SNI selected" in the same table: another name under the same
 * wildcard endpoint is the same endpoint and passes. Without the handshake's facts the answer is
 * yes, so a lost mapping fails closed.
 */
export function misdirected(table: EndpointTable, hostPool: Pool | undefined, tls: TlsInfo | undefined, sniPort: number): boolean {
  if (!tls?.sni) return true
  const sniPool = table.lookup({ account: '', binding: 'public', scheme: 'https', host: tls.sni, port: sniPort })
  return sniPool === undefined || sniPool !== hostPool
}
