/**
 * The typed streams of ngrok's agent protocol: every stream starts with a uint32 type, RPC streams
 * then carry one JSON request and one JSON reply (+FIN). Append-only: never renumber.
 */
export const StreamType = {
  AUTH: 0,
  BIND: 1,
  UNBIND: 2,
  PROXY: 3,
  RESTART: 4,
  STOP: 5,
  UPDATE: 6,
  START_TUNNEL_WITH_LABEL: 7,
  SRV_INFO: 8,
  STOP_TUNNEL: 9,
  HEARTBEAT: 0xffffffff,
} as const

/** Protocol versions we speak, in order of preference. */
export const VERSIONS = ['3', '2'] as const

/** EdgeType in the proxy header: a string in ngrok's JSON. */
export const EdgeType = { TCP: '1', TLS: '2', HTTPS: '3' } as const

/**
 * Reads `key` from a JSON object ignoring case: the Go agents and the Rust SDKs disagree on case
 * (`AuthToken` vs `Authtoken`), and ngrok's own server reads either.
 */
export function field(obj: unknown, key: string): unknown {
  if (obj === null || typeof obj !== 'object') return undefined
  const record = obj as Record<string, unknown>
  if (key in record) return record[key]
  const lower = key.toLowerCase()
  for (const k of Object.keys(record)) if (k.toLowerCase() === lower) return record[k]
  return undefined
}

export function stringField(obj: unknown, key: string): string {
  const v = field(obj, key)
  return typeof v === 'string' ? v : ''
}

/**
 * An error reply the SDKs understand: the text, then a line `ERR_NGROK_NNNN` they lift out as the
 * error code (and our own code for searching logs).
 */
export function errorReply(message: string, ngrokCode: string, warrenCode?: string): { Error: string } {
  return { Error: `${message}${warrenCode ? ` (${warrenCode})` : ''}\n\n${ngrokCode}` }
}

/** The header of a proxy stream (type 3): which tunnel, and who the public client is. */
export interface ProxyHeader {
  Id: string
  ClientAddr: string
  Proto: string
  EdgeType: string
  PassthroughTLS: boolean
}

/** Builds the proxy-stream header: u32 type 3, int64 little-endian length, JSON. */
export function encodeProxyHeader(header: ProxyHeader): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header))
  const out = new Uint8Array(4 + 8 + json.length)
  const view = new DataView(out.buffer)
  view.setUint32(0, StreamType.PROXY)
  view.setBigInt64(4, BigInt(json.length), true)
  out.set(json, 12)
  return out
}

export function encodeStreamType(type: number): Uint8Array {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, type >>> 0)
  return out
}
