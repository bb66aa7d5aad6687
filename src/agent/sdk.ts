import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from '../lib/log.ts'
import { Secret } from '../lib/secret.ts'
import { DEFAULT_SERVER_ADDR, endpointsFromFlags, type EndpointFlagValues } from './flags.ts'
import { Agent, type EndpointState } from './reconnect.ts'
import type { EndpointKind } from './upstream.ts'

/** What `forward()` takes: the upstream, where the edge is, and the endpoint's options (ngrok's names, camelCase). */
export interface ForwardOptions {
  /** Upstream: a port, `host:port`, `http(s)://…`, `file:///path` or `unix:/path.sock`. */
  addr: number | string
  /** Authtoken of a warren account; default `WARREN_AUTHTOKEN`. */
  authtoken?: string
  /** The edge's agent port; default `WARREN_SERVER_ADDR`, then `localhost:4443`. */
  serverAddr?: string
  /** Path of a PEM file with the CA the edge's certificate chains to. */
  serverCa?: string
  /** The same CA as PEM text. */
  serverCaPem?: string
  /** Endpoint protocol (default http). */
  proto?: EndpointKind
  /** URL to bind (`https://app.example.com`, `tcp://host:port`, `tls://name`); default: the edge picks. */
  url?: string
  binding?: 'public' | 'internal'
  poolingEnabled?: boolean
  /** Traffic policy (ngrok's format) as an object, or YAML/JSON text. */
  trafficPolicy?: string | object
  /** `user:password` pairs (HTTP). */
  basicAuth?: string | string[]
  requestHeaderAdd?: string | string[]
  requestHeaderRemove?: string | string[]
  responseHeaderAdd?: string | string[]
  responseHeaderRemove?: string | string[]
  cidrAllow?: string | string[]
  cidrDeny?: string | string[]
  /** PROXY protocol header for the upstream. */
  proxyProto?: 1 | 2
  /** Verify the certificate of an https:// upstream (default false). */
  verifyUpstreamTls?: boolean
  name?: string
  description?: string
  metadata?: string
  /** Session metadata. */
  sessionMetadata?: string
  /** Where the agent logs (default: nowhere). */
  log?: Logger
}

/** A running endpoint. */
export interface Forwarder {
  /** The public URL the edge gave (it stays the same across reconnects). */
  url(): string
  /** Unbinds, lets open connections finish, and disconnects. */
  close(): Promise<void>
}

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent, enabled: () => false }

function list(v: string | string[] | undefined): string[] | undefined {
  return v === undefined ? undefined : Array.isArray(v) ? v : [v]
}

/**
 * Opens an endpoint on a warren edge from inside a Bun or Node program and forwards its traffic to
 * `addr`, the way `@ngrok/ngrok`'s `forward()` does, without a native module. Reconnects by itself.
 *
 * @example
 * const listener = await forward({ addr: 8080, authtoken: 'tok', serverAddr: 'edge.example.com:4443' })
 * console.log(`Ingress at ${listener.url()}`)
 * await listener.close()
 */
export async function forward(options: ForwardOptions): Promise<Forwarder> {
  const kind = options.proto ?? 'http'
  const flags: EndpointFlagValues = {}
  const set = <K extends keyof EndpointFlagValues>(k: K, v: EndpointFlagValues[K] | undefined) => {
    if (v !== undefined) flags[k] = v
  }
  set('url', options.url)
  set('binding', options.binding)
  set('pooling-enabled', options.poolingEnabled)
  set('basic-auth', list(options.basicAuth))
  set('request-header-add', list(options.requestHeaderAdd))
  set('request-header-remove', list(options.requestHeaderRemove))
  set('response-header-add', list(options.responseHeaderAdd))
  set('response-header-remove', list(options.responseHeaderRemove))
  set('cidr-allow', list(options.cidrAllow))
  set('cidr-deny', list(options.cidrDeny))
  set('upstream-proxy-protocol', options.proxyProto === undefined ? undefined : String(options.proxyProto))
  set('upstream-tls-verify', options.verifyUpstreamTls)
  set('name', options.name)
  set('description', options.description)
  set('metadata', options.metadata)
  const [spec] = endpointsFromFlags(kind, String(options.addr), flags)
  if (options.trafficPolicy !== undefined)
    spec!.trafficPolicy = typeof options.trafficPolicy === 'string' ? options.trafficPolicy : JSON.stringify(options.trafficPolicy)

  const agent = new Agent({
    serverAddr: options.serverAddr ?? process.env.WARREN_SERVER_ADDR ?? DEFAULT_SERVER_ADDR,
    ca: options.serverCaPem ?? (options.serverCa ? readFileSync(options.serverCa, 'utf8') : undefined),
    authtoken: new Secret(options.authtoken ?? process.env.WARREN_AUTHTOKEN ?? ''),
    metadata: options.sessionMetadata,
    endpoints: [spec!],
    log: options.log ?? silent,
    retryStart: false,
  })
  const [state] = (await agent.start()) as EndpointState[]
  return {
    url: () => state!.url,
    close: () => agent.stop(),
  }
}

/**
 * Serves a fetch handler on a warren endpoint without opening a local port: the handler listens on a
 * private unix socket and the endpoint forwards to it (the spirit of `@ngrok/ngrok`'s `listen()`).
 *
 * @example
 * const listener = await listen((req) => new Response('hi'), { authtoken: 'tok', serverAddr: 'edge.example.com:4443' })
 */
export async function listen(fetchHandler: (req: Request) => Response | Promise<Response>, options: Omit<ForwardOptions, 'addr' | 'proto'>): Promise<Forwarder> {
  const dir = mkdtempSync(join(tmpdir(), 'warren-listen-'))
  const path = join(dir, 'app.sock')
  const server = Bun.serve({ unix: path, fetch: fetchHandler })
  try {
    const forwarder = await forward({ ...options, addr: `unix:${path}`, proto: 'http' })
    return {
      url: () => forwarder.url(),
      async close() {
        await forwarder.close()
        void server.stop(true)
        rmSync(dir, { recursive: true, force: true })
      },
    }
  } catch (err) {
    void server.stop(true)
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}
