import type { HttpExchange } from '../policy/types.ts'

/**
 * Adds the X-Forwarded-* headers an upstream uses to learn who asked and how:
 * For is appended to any list the client sent, Proto and Host describe the edge's side.
 */
export function setForwardedHeaders(ex: HttpExchange, originalHost: string): void {
  const h = ex.headers
  const prior = h.get('x-forwarded-for')
  h.set('x-forwarded-for', prior ? `${prior}, ${ex.conn.clientIp}` : ex.conn.clientIp)
  h.set('x-forwarded-proto', ex.endpoint.scheme === 'https' ? 'https' : 'http')
  h.set('x-forwarded-host', originalHost)
}
