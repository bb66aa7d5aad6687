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

/** RFC 9110 token: `Headers.delete` throws on anything else (a `Connection: cl\xbcse` was a 500). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** Removes hop-by-hop headers in place, including any named by `Connection`. */
export function stripHopHeaders(headers: Headers): void {
  const connection = headers.get('connection')
  if (connection) for (const part of connection.split(',')) if (TOKEN.test(part.trim())) headers.delete(part.trim())
  for (const name of HOP_BY_HOP) headers.delete(name)
}

/** True when the request asks to switch to websockets (kept through the proxy, as ngrok does). */
export function isWebSocketUpgrade(headers: Headers): boolean {
  return (
    (headers.get('upgrade') ?? '').toLowerCase() === 'websocket' &&
    (headers.get('connection') ?? '').toLowerCase().includes('upgrade')
  )
}
