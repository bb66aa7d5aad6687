import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { parseSource } from '../config/document.ts'
import { publicEndpointUrl, type Scheme } from '../config/url.ts'
import type { Endpoint } from '../endpoints/endpoint.ts'
import { isApiOwned } from './owned-files.ts'

/**
 * An endpoint as the API shows it: ngrok's Endpoint resource fields that apply to warren, plus
 * `account`, `source` and `read_only`.
 */
export interface EndpointResource {
  id: string
  /** URL of this resource in the API. */
  uri: string
  type: 'cloud' | 'agent'
  url: string
  scheme: string
  host: string
  port: number
  hostport: string
  /** One binding: `public` or `internal`. */
  bindings: string[]
  pooling_enabled: boolean
  description?: string
  metadata?: string
  /** The traffic policy as YAML or JSON text (as written, or the declared map as JSON). */
  traffic_policy?: string
  /** Account namespace (warren). */
  account: string
  /** Policies file (relative to the policies directory) or agent session that declares it (warren). */
  source: string
  /** True unless the API created it: hand-written files and agent endpoints cannot be changed here (warren). */
  read_only: boolean
  /** Agent endpoints: the tunnel session serving it, or null while its agent is reconnecting (ngrok's `tunnel_session`). */
  tunnel_session?: { id: string; uri: string } | null
}

/** Parsed policies files for one response, so a list reads each source file once. */
export type SourceCache = Map<string, { value: unknown; locate(path: (string | number)[]): { line: number; col: number } } | null>

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x)
}

/**
 * The declaration of a cloud endpoint as its file says now: the loaded table keeps only the compiled
 * policy, so the policy text is read back from the source (matched by the position of its `url`).
 */
function declarationOf(dir: string, ep: Endpoint, cache: SourceCache): Record<string, unknown> | undefined {
  let doc = cache.get(ep.source)
  if (doc === undefined) {
    doc = null
    try {
      const parsed = parseSource(readFileSync(join(dir, ep.source), 'utf8'))
      if ('doc' in parsed) doc = parsed.doc
    } catch {}
    cache.set(ep.source, doc)
  }
  if (!doc) return undefined
  const value = doc.value
  const candidates: { decl: unknown; path: (string | number)[] }[] =
    isRecord(value) && Array.isArray(value.endpoints) ? value.endpoints.map((decl, i) => ({ decl, path: ['endpoints', i] })) : [{ decl: value, path: [] }]
  for (const { decl, path } of candidates) {
    const at = doc.locate([...path, 'url'])
    if (isRecord(decl) && at.line === ep.position.line && at.col === ep.position.col) return decl
  }
  return undefined
}

function policyText(dir: string, source: string, decl: Record<string, unknown> | undefined): string | undefined {
  if (!decl) return undefined
  const tp = decl.traffic_policy
  if (typeof tp === 'string') return tp
  if (isRecord(tp)) return JSON.stringify(tp)
  if (typeof decl.traffic_policy_file === 'string') {
    try {
      return readFileSync(resolve(dir, dirname(source), decl.traffic_policy_file), 'utf8')
    } catch {}
  }
  return undefined
}

export function endpointResource(
  ep: Endpoint,
  options: {
    origin: string
    policiesDir: string
    cache: SourceCache
    /** Ports URLs without one are served on: the shown `url` names them so it works as printed. */
    publicPorts: Readonly<Record<Scheme, number>>
    session?: { online: boolean; session: string | undefined } | undefined
  },
): EndpointResource {
  const decl = ep.kind === 'cloud' ? declarationOf(options.policiesDir, ep, options.cache) : undefined
  const trafficPolicy = ep.kind === 'cloud' ? policyText(options.policiesDir, ep.source, decl) : undefined
  const out: EndpointResource = {
    id: ep.id,
    uri: `${options.origin}/endpoints/${ep.id}`,
    type: ep.kind,
    url: publicEndpointUrl(ep.url, options.publicPorts),
    scheme: ep.url.scheme,
    host: ep.url.host,
    port: ep.port,
    hostport: `${ep.url.host}:${ep.port}`,
    bindings: [ep.url.binding],
    pooling_enabled: ep.poolingEnabled,
    account: ep.account,
    source: ep.source,
    read_only: !isApiOwned(ep),
  }
  if (ep.description !== undefined) out.description = ep.description
  if (ep.metadata !== undefined && ep.metadata !== null) out.metadata = typeof ep.metadata === 'string' ? ep.metadata : JSON.stringify(ep.metadata)
  if (trafficPolicy !== undefined) out.traffic_policy = trafficPolicy
  if (ep.kind === 'agent') {
    const id = options.session?.online ? options.session.session : undefined
    out.tunnel_session = id ? { id, uri: `${options.origin}/tunnel-sessions/${encodeURIComponent(id)}` } : null
  }
  return out
}
