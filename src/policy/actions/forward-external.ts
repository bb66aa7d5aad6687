import * as v from 'valibot'
import { defineAction, type Outcome } from '../types.ts'

const ORIGIN = /^(https?|tcp|tls):\/\/[^/?#\s]+:?\d*\/?$/i

/**
 * warren's own terminating action: the edge as a plain reverse proxy. In on_http_request `url` is an
 * `http(s)://host:port` origin (the client's Host goes upstream unchanged unless `add-headers` sets
 * `host`; X-Forwarded-For/Proto/Host are added). In on_tcp_connect of tcp:// and tls:// endpoints it is
 * `tcp://host:port` or `tls://host:port` and the connection's bytes are relayed as they are
 * (for tls:// endpoints that is TLS passthrough: the upstream terminates).
 */
export const forwardExternal = defineAction({
  type: 'forward-external',
  phases: ['on_http_request', 'on_tcp_connect'],
  terminating: true,
  config: v.strictObject({
    /** Upstream, e.g. `http://127.0.0.1:3000` (no path) or `tcp://127.0.0.1:5432`. */
    url: v.pipe(v.string(), v.regex(ORIGIN, 'must be an origin such as http://127.0.0.1:3000 or tcp://127.0.0.1:5432')),
    /** tcp:// and tls:// upstreams only: send a PROXY protocol header (version 1 or 2) with the client's address first. */
    proxy_protocol: v.optional(v.picklist([1, 2], 'must be 1 or 2')),
  }),
  build(config, env) {
    const url = new URL(config.url)
    const scheme = url.protocol.slice(0, -1).toLowerCase()
    const http = scheme === 'http' || scheme === 'https'
    if (env.phase === 'on_http_request' && !http) throw new Error(`on_http_request needs an http:// or https:// url, not ${scheme}://`)
    if (env.phase === 'on_tcp_connect') {
      if (env.scheme === 'http' || env.scheme === 'https')
        throw new Error('on http(s) endpoints forward in on_http_request; on_tcp_connect forwarding is for tcp:// and tls:// endpoints')
      if (http) throw new Error(`on_tcp_connect needs a tcp:// or tls:// url, not ${scheme}://`)
      if (url.port === '') throw new Error(`${scheme}:// upstreams need a port`)
    }
    if (config.proxy_protocol !== undefined && http) throw new Error('proxy_protocol applies to tcp:// and tls:// upstreams (HTTP upstreams get X-Forwarded-For)')
    const target = { kind: 'external', url, ...(config.proxy_protocol ? { proxyProtocol: config.proxy_protocol } : {}) } as const
    // The same outcome for every request: made once, frozen (no reader changes an outcome).
    const outcome: Outcome = Object.freeze({ kind: 'forward', target: Object.freeze(target) })
    return function forwardExternal() {
      return outcome
    }
  },
})
