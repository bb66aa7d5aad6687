import type { HttpExchange } from './types.ts'

function headerLists(headers: Headers): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  headers.forEach((value, name) => {
    // set-cookie may repeat; every other header already arrives joined by Headers.
    ;(out[name] ??= []).push(value)
  })
  return out
}

function queryParams(url: URL): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  url.searchParams.forEach((value, name) => (out[name] ??= []).push(value))
  return out
}

/**
 * The CEL variables for one exchange, in ngrok's names (`req.url.path`, `conn.client_ip`…).
 * Built on demand: a policy without expressions or templates never pays for it.
 */
export function celContext(ex: HttpExchange): Record<string, unknown> {
  const length = ex.headers.get('content-length')
  const req = {
    method: ex.method,
    host: ex.url.host,
    url: {
      raw: ex.url.href,
      scheme: ex.url.protocol.slice(0, -1),
      host: ex.url.hostname,
      port: ex.url.port === '' ? BigInt(ex.endpoint.port) : BigInt(ex.url.port),
      path: ex.url.pathname,
      query: ex.url.search.slice(1),
      query_params: queryParams(ex.url),
    },
    headers: headerLists(ex.headers),
    content_length: length === null ? -1n : BigInt(Number(length) || 0),
    content_type: ex.headers.get('content-type') ?? '',
    user_agent: { raw: ex.headers.get('user-agent') ?? '' },
  }
  const res = ex.response
    ? {
        status_code: BigInt(ex.response.status),
        headers: headerLists(ex.response.headers),
        content_type: ex.response.headers.get('content-type') ?? '',
      }
    : {}
  return {
    conn: {
      client_ip: ex.conn.clientIp,
      client_port: BigInt(ex.conn.clientPort),
      server_ip: ex.conn.serverIp,
      server_port: BigInt(ex.conn.serverPort),
      ts: { start: new Date(ex.conn.startedAt) },
    },
    endpoint: {
      id: ex.endpoint.id,
      url: ex.endpoint.url,
      host: ex.endpoint.host,
      port: BigInt(ex.endpoint.port),
      protocol: ex.endpoint.scheme,
      binding: ex.endpoint.binding,
    },
    req,
    res,
    vars: ex.vars,
    time: { now: new Date() },
    actions: { ngrok: ex.actions },
  }
}
