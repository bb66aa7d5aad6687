/** Hop-by-hop headers (RFC 9110 §7.6.1) plus the legacy ones proxies must not forward. */
export const HOP_BY_HOP: readonly string[] = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
]

/** HOP_BY_HOP as a set, for lookups on the data path. */
export const HOP_SET: ReadonlySet<string> = new Set(HOP_BY_HOP)
/** What a Connection option may not remove: the edge routes and frames by these. */
const KEPT: ReadonlySet<string> = new Set(['host', 'content-length'])
/** RFC 9110 token; `Headers.delete` throws on anything else. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/

/** True when a (lower-case) `Connection` option names a field the client may have dropped before forwarding. */
export function mayDropOption(name: string): boolean {
  return TOKEN.test(name) && !HOP_SET.has(name) && !KEPT.has(name)
}

/**
 * Removes, in place, the fields the `Connection` header names (RFC 9110 §7.6.1), except Host,
 * Content-Length and the hop-by-hop fields themselves (`stripHopHeaders` drops those when the message
 * leaves, and a websocket handshake still needs its Upgrade until then). On requests this runs once at
 * entry, before any policy or the edge adds a header, so a client's `Connection: x-forwarded-for`
 * can only drop what the client itself sent, never what the edge sets afterwards.
 */
export function dropConnectionListed(headers: Headers): void {
  const connection = headers.get('connection')
  if (!connection) return
  for (const part of connection.split(',')) {
    const name = part.trim().toLowerCase()
    if (mayDropOption(name)) headers.delete(name)
  }
}

/**
 * Removes the hop-by-hop headers in place. It does not read `Connection` again: on a request the
 * client's options were dropped at entry, and anything named now was set by the edge or a policy.
 */
export function stripHopHeaders(headers: Headers): void {
  for (const name of HOP_BY_HOP) headers.delete(name)
}

/** True when the request asks to switch to websockets (kept through the proxy, as ngrok does). */
export function isWebSocketUpgrade(headers: Headers): boolean {
  return (
    (headers.get('upgrade') ?? '').toLowerCase() === 'websocket' &&
    (headers.get('connection') ?? '').toLowerCase().includes('upgrade')
  )
}
