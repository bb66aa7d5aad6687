import type { Scheme } from '../config/url.ts'
import type { AgentTlsTermination } from './tls-termination.ts'
import type { EndpointKind, Upstream } from './upstream.ts'

/** HTTP version the agent speaks to an HTTP endpoint's upstream (ngrok's `upstream.protocol`). */
export type UpstreamProtocol = 'http1' | 'http2'

/**
 * One endpoint the agent runs, whether it came from flags (`warren http 8080 --url …`) or from a
 * config file's `endpoints:`. It is turned into a Bind exactly as ngrok's agents send it, so the
 * edge's translation of module options (basic auth, IP restrictions, headers) and policies applies.
 */
export interface EndpointSpec {
  name: string
  kind: EndpointKind
  /** The Bind's `Proto`: http or https for HTTP endpoints, else tcp or tls. */
  scheme: Scheme
  /** Requested URL with its scheme; undefined lets the edge choose (random name or port). */
  url: string | undefined
  bindings: string[]
  poolingEnabled: boolean
  upstream: Upstream
  /**
   * `http2`: the agent reads the HTTP/1.1 requests the edge sends and forwards them as HTTP/2 (h2c
   * with prior knowledge, or TLS with ALPN h2 for https:// upstreams). Default `http1`: bytes pass through.
   */
  upstreamProtocol?: UpstreamProtocol
  /** tls:// endpoints: the agent terminates the client's TLS with this certificate and forwards plaintext. */
  tlsTermination?: AgentTlsTermination
  /** PROXY protocol header the edge puts in front of each connection for the upstream (0: none). */
  proxyProtocol: 0 | 1 | 2
  /** Traffic policy as JSON text (the edge enforces it). */
  trafficPolicy: string | undefined
  description: string | undefined
  metadata: string | undefined
  /** Module options in ngrok's Bind shape (`BasicAuth`, `RequestHeaders`, `IPRestriction`, …), from legacy flags. */
  modules: Record<string, unknown>
}

/** The `Opts` ngrok's agents send for each protocol, with every module empty. */
function baseOpts(spec: EndpointSpec): Record<string, unknown> {
  const common = { ProxyProto: spec.proxyProtocol, IPRestriction: null, TrafficPolicy: spec.trafficPolicy ?? '', URL: spec.url ?? '' }
  if (spec.kind === 'tcp') return { Addr: '', ...common }
  if (spec.kind === 'tls')
    return { Domain: '', Hostname: '', Subdomain: '', MutualTLSAtAgent: false, MutualTLSAtEdge: null, TLSTermination: null, ...common }
  return {
    Domain: '',
    Hostname: '',
    Auth: '',
    Subdomain: '',
    HostHeaderRewrite: false,
    LocalURLScheme: spec.upstream.kind === 'net' && spec.upstream.tls ? 'https' : 'http',
    Compression: null,
    CircuitBreaker: null,
    BasicAuth: null,
    OAuth: null,
    OIDC: null,
    WebhookVerification: null,
    MutualTLSCA: null,
    RequestHeaders: null,
    ResponseHeaders: null,
    WebsocketTCPConverter: null,
    UserAgentFilter: null,
    ...common,
  }
}

/**
 * The Bind request for `spec`. `id` is "" on the first bind and the edge's tunnel id afterwards (so a
 * reconnect keeps it); `keepUrl` asks for the URL the edge gave before, for when the edge restarted
 * and forgot it.
 */
export function bindRequest(spec: EndpointSpec, id: string, keepUrl?: string): Record<string, unknown> {
  const opts = { ...baseOpts(spec), ...spec.modules }
  if (keepUrl && !spec.url) opts.URL = keepUrl
  return {
    Id: id,
    Proto: spec.scheme,
    ForwardsTo: spec.upstream.text,
    ForwardsProto: '',
    Opts: opts,
    Extra: {
      Token: '',
      IPPolicyRef: '',
      Metadata: spec.metadata ?? '',
      Bindings: spec.bindings,
      PoolingEnabled: spec.poolingEnabled,
      Name: spec.name,
      Description: spec.description ?? '',
    },
  }
}
