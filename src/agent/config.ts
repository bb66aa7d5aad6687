import { existsSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import * as v from 'valibot'
import { describeIssue, formatIssue, issuePath, parseSource } from '../config/document.ts'
import { formatEndpointUrl, parseEndpointUrl, type Scheme } from '../config/url.ts'
import { parseDuration } from '../lib/duration.ts'
import { CODES, WarrenError } from '../lib/errors.ts'
import type { EndpointSpec } from './spec.ts'
import { readAgentTls } from './tls-termination.ts'
import { parseUpstream, type EndpointKind } from './upstream.ts'

const Duration = v.pipe(
  v.string(),
  v.check((s) => parseDuration(s) !== undefined, 'must be a duration such as "10s" or "1m30s"'),
)

/** The `agent:` section (ngrok's agent config v3, with warren's connect address and CA). */
export const AgentSectionSpec = v.strictObject({
  /** Authtoken of a warren account (`accounts[].authtokens` in the edge's warren.yaml). */
  authtoken: v.optional(v.string()),
  /** The edge's agent port, `host[:port]` (443 when omitted). ngrok v2 called it `server_addr`. */
  connect_url: v.optional(v.pipe(v.string(), v.minLength(1))),
  /** CA to trust for the edge: a PEM file path (relative to this file), or `host` for the system store. */
  connect_cas: v.optional(v.pipe(v.string(), v.minLength(1))),
  /** Local inspector address, or `false` (the inspector is not built yet: only validated). */
  web_addr: v.optional(v.union([v.string(), v.literal(false)])),
  /** Where logs go: `stdout`, `stderr`, `false`, or a file path. */
  log: v.optional(v.union([v.string(), v.literal(false)])),
  /** Lowest level logged. */
  log_level: v.optional(v.picklist(['debug', 'info', 'warn', 'error'])),
  /** Log line format: `json`, `logfmt`, or `term` (short human lines). */
  log_format: v.optional(v.picklist(['json', 'logfmt', 'term'])),
  /** Session metadata, shown by the edge. */
  metadata: v.optional(v.string()),
  /** How often the agent checks the edge is alive (ngrok's default: 10s). */
  heartbeat_interval: v.optional(Duration),
  /** How long without an answer before it reconnects, on top of the interval (default: 15s). */
  heartbeat_tolerance: v.optional(Duration),
  /** Accepted for ngrok compatibility; the terminal dashboard is not built yet. */
  console_ui: v.optional(v.union([v.boolean(), v.literal('iftty')])),
  /** Accepted for ngrok compatibility and ignored: warren never phones home. */
  update_check: v.optional(v.boolean()),
})
export type AgentSection = v.InferOutput<typeof AgentSectionSpec>

/** One endpoint of `endpoints:` (ngrok's v3 shape). */
export const EndpointEntrySpec = v.strictObject({
  /** Name used by `warren start NAME`. */
  name: v.pipe(v.string(), v.minLength(1)),
  description: v.optional(v.string()),
  metadata: v.optional(v.string()),
  /** `https://app.example.com`, `tcp://host:port`, `tls://name`; a bare scheme (`tcp://`) lets the edge pick. Default `https://` random. */
  url: v.optional(v.string()),
  /** `public` (default) or `internal`. */
  bindings: v.optional(v.array(v.picklist(['public', 'internal']))),
  /** Let several agents serve this URL together (load balanced by the edge). */
  pooling_enabled: v.optional(v.boolean()),
  /** Traffic policy (ngrok's format), enforced by the edge. */
  traffic_policy: v.optional(v.record(v.string(), v.unknown())),
  /** Traffic policy from a YAML or JSON file (relative to this config file). */
  traffic_policy_file: v.optional(v.pipe(v.string(), v.minLength(1))),
  upstream: v.strictObject({
    /** `8080`, `host:port`, `http://…`, `https://…`, `file:///path`, `unix:/path.sock`. */
    url: v.union([v.string(), v.number()]),
    /** Upstream HTTP version: `http1` (default) or `http2` (h2c with prior knowledge; ALPN h2 for https:// upstreams). */
    protocol: v.optional(v.picklist(['http1', 'http2'])),
    /** Send a PROXY protocol header (version 1 or 2) to the upstream. */
    proxy_protocol: v.optional(v.union([v.picklist(['1', '2', '']), v.literal(1), v.literal(2)])),
    /** warren: verify the certificate of an https:// or tls:// upstream (default false, as in ngrok). */
    tls_verify: v.optional(v.boolean()),
    /** warren: for file:// upstreams, serve names that start with a dot (`.env`, `.git/`); hidden by default. */
    dotfiles: v.optional(v.boolean()),
  }),
  /** Agent-side TLS termination for tls:// endpoints: the agent presents this certificate and forwards plaintext. */
  agent_tls_termination: v.optional(
    v.strictObject({
      /** PEM certificate (chain): a file path relative to this config file, or the PEM text. */
      server_certificate: v.pipe(v.string(), v.minLength(1)),
      /** PEM private key of that certificate: a file path relative to this config file, or the PEM text. */
      server_private_key: v.pipe(v.string(), v.minLength(1)),
      /** Client CAs for mutual TLS at the agent (ngrok); not supported by warren yet: refused with a clear message. */
      mutual_tls_certificate_authorities: v.optional(v.array(v.string())),
    }),
  ),
})
export type EndpointEntry = v.InferOutput<typeof EndpointEntrySpec>

export const AgentConfigSpec = v.strictObject({
  /** Config format version: 3 (ngrok's agent config v3). */
  version: v.custom<3 | '3'>((x) => x === 3 || x === '3', 'must be 3 (the ngrok agent config v3 format)'),
  agent: v.optional(AgentSectionSpec),
  endpoints: v.optional(v.array(EndpointEntrySpec)),
})

/** An endpoint entry and the file it came from (paths in it are relative to that file). */
export interface SourcedEntry {
  entry: EndpointEntry
  source: string
}

/** Several config files merged: later `agent:` keys win, later endpoints replace same-named ones. */
export interface AgentConfig {
  sources: string[]
  agent: AgentSection
  /** Directory each `agent:` key's file lives in (for `connect_cas`). */
  agentBase: string
  endpoints: SourcedEntry[]
}

/**
 * Where `warren` keeps its agent config when no `--config` is given: `$XDG_CONFIG_HOME/warren/agent.yml`
 * (default `~/.config`), `~/Library/Application Support/warren/agent.yml` on macOS,
 * `%LOCALAPPDATA%\warren\agent.yml` on Windows.
 */
export function defaultConfigPath(env: Record<string, string | undefined> = process.env, platform: string = process.platform, home: string = homedir()): string {
  if (platform === 'win32') return join(env.LOCALAPPDATA ?? join(home, 'AppData', 'Local'), 'warren', 'agent.yml')
  if (platform === 'darwin') return join(home, 'Library', 'Application Support', 'warren', 'agent.yml')
  return join(env.XDG_CONFIG_HOME || join(home, '.config'), 'warren', 'agent.yml')
}

function invalid(message: string): WarrenError {
  return new WarrenError(CODES.CONFIG_INVALID, message)
}

/** Parses and validates one config file's text; errors carry `file:line:col`. */
export function parseConfigText(text: string, file: string): v.InferOutput<typeof AgentConfigSpec> {
  const parsed = parseSource(text)
  if ('errors' in parsed) throw invalid(parsed.errors.map((e) => formatIssue({ file, ...e, code: e.code ?? CODES.CONFIG_INVALID })).join('\n'))
  const result = v.safeParse(AgentConfigSpec, parsed.doc.value ?? {})
  if (!result.success)
    throw invalid(
      result.issues
        .map((i) => formatIssue({ file, ...parsed.doc.locate(issuePath(i)), code: CODES.CONFIG_INVALID, message: describeIssue(i) }))
        .join('\n'),
    )
  const names = new Set<string>()
  for (const [i, e] of (result.output.endpoints ?? []).entries()) {
    if (names.has(e.name))
      throw invalid(formatIssue({ file, ...parsed.doc.locate(['endpoints', i, 'name']), code: CODES.CONFIG_INVALID, message: `endpoints[${i}].name: "${e.name}" is used twice` }))
    names.add(e.name)
  }
  return result.output
}

/**
 * Reads and merges config files in order. With no paths the default file is read when it exists;
 * an explicitly named file must exist.
 */
export function loadAgentConfig(paths: readonly string[], options: { defaultPath?: string } = {}): AgentConfig {
  const files = paths.length ? paths.map((p) => ({ path: resolve(p), required: true })) : [{ path: options.defaultPath ?? defaultConfigPath(), required: false }]
  const config: AgentConfig = { sources: [], agent: {}, agentBase: process.cwd(), endpoints: [] }
  for (const { path, required } of files) {
    if (!required && !existsSync(path)) continue
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (err) {
      throw invalid(`Cannot read config "${path}": ${(err as Error).message}`)
    }
    const one = parseConfigText(text, path)
    config.sources.push(path)
    if (one.agent) {
      const agent = { ...one.agent }
      if (agent.connect_cas && agent.connect_cas !== 'host' && agent.connect_cas !== 'trusted') agent.connect_cas = resolve(dirname(path), agent.connect_cas)
      config.agent = { ...config.agent, ...agent }
    }
    for (const entry of one.endpoints ?? []) {
      const at = config.endpoints.findIndex((e) => e.entry.name === entry.name)
      const sourced = { entry, source: path }
      if (at === -1) config.endpoints.push(sourced)
      else config.endpoints[at] = sourced
    }
  }
  return config
}

/** `https://x` → kind http; `tcp://` alone means "any port". */
function kindOfUrl(url: string | undefined): { kind: EndpointKind; scheme: Scheme; url: string | undefined } {
  if (url === undefined || url.trim() === '') return { kind: 'http', scheme: 'https', url: undefined }
  const bare = /^(https?|tcp|tls):\/\/$/i.exec(url.trim())
  if (bare) {
    const scheme = bare[1]!.toLowerCase() as Scheme
    return { kind: scheme === 'tcp' || scheme === 'tls' ? scheme : 'http', scheme, url: undefined }
  }
  const parsed = parseEndpointUrl(url)
  const scheme = parsed.scheme
  return { kind: scheme === 'tcp' || scheme === 'tls' ? scheme : 'http', scheme, url: formatEndpointUrl(parsed) }
}

/** Reads a traffic policy file (YAML or JSON) and returns it as JSON text. */
export function readPolicyFile(path: string): string {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new WarrenError(CODES.POLICY_FILE_MISSING, `Cannot read traffic policy file "${path}": ${(err as Error).message}`)
  }
  const parsed = parseSource(text)
  if ('errors' in parsed) {
    const e = parsed.errors[0]!
    const code = e.code ?? CODES.POLICY_FILE_SYNTAX
    throw new WarrenError(code, `Traffic policy file ${formatIssue({ file: path, ...e, code })}`)
  }
  const value = parsed.doc.value
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new WarrenError(CODES.POLICY_FILE_SCHEMA, `Traffic policy file "${path}" must hold an object with on_http_request, on_http_response, on_tcp_connect or on_event_stream_message`)
  return JSON.stringify(value)
}

/** Turns one config entry into what the agent binds. */
export function endpointFromEntry(sourced: SourcedEntry): EndpointSpec {
  const { entry, source } = sourced
  const where = `${source}: endpoint "${entry.name}"`
  const wrap = <T>(fn: () => T): T => {
    try {
      return fn()
    } catch (err) {
      if (err instanceof WarrenError) throw new WarrenError(err.code, `${where}: ${err.message}`)
      throw err
    }
  }
  if (entry.traffic_policy && entry.traffic_policy_file) throw invalid(`${where}: use traffic_policy or traffic_policy_file, not both`)
  const { kind, scheme, url } = wrap(() => kindOfUrl(entry.url))
  const upstream = wrap(() => parseUpstream(entry.upstream.url, { endpoint: kind, verifyTls: entry.upstream.tls_verify ?? false, dotfiles: entry.upstream.dotfiles ?? false }))
  const pp = entry.upstream.proxy_protocol
  const proxyProtocol = pp === 1 || pp === '1' ? 1 : pp === 2 || pp === '2' ? 2 : 0
  const http2 = entry.upstream.protocol === 'http2'
  if (http2 && kind !== 'http') throw invalid(`${where}: upstream.protocol only applies to http endpoints`)
  if (http2 && upstream.kind === 'file') throw invalid(`${where}: upstream.protocol http2 needs a network or unix socket upstream, not file://`)
  const termination = entry.agent_tls_termination
  if (termination && kind !== 'tls') throw invalid(`${where}: agent_tls_termination only applies to tls:// endpoints`)
  if (termination?.mutual_tls_certificate_authorities?.length)
    throw invalid(`${where}: agent_tls_termination.mutual_tls_certificate_authorities is not supported by warren yet`)
  if (termination && proxyProtocol) throw invalid(`${where}: upstream.proxy_protocol cannot be combined with agent_tls_termination`)
  const tlsTermination = termination
    ? wrap(() =>
        readAgentTls({
          cert: termination.server_certificate,
          key: termination.server_private_key,
          base: dirname(source),
          names: ['agent_tls_termination.server_certificate', 'agent_tls_termination.server_private_key'],
        }),
      )
    : undefined
  const policy = entry.traffic_policy
    ? JSON.stringify(entry.traffic_policy)
    : entry.traffic_policy_file
      ? wrap(() => readPolicyFile(resolve(dirname(source), entry.traffic_policy_file!)))
      : undefined
  return {
    name: entry.name,
    kind,
    scheme,
    url,
    bindings: entry.bindings ?? [],
    poolingEnabled: entry.pooling_enabled ?? false,
    upstream,
    ...(http2 ? { upstreamProtocol: 'http2' as const } : {}),
    ...(tlsTermination ? { tlsTermination } : {}),
    proxyProtocol,
    trafficPolicy: policy,
    description: entry.description,
    metadata: entry.metadata,
    modules: {},
  }
}

/** The endpoints `warren start` runs: the named ones (in that order), or all of them. */
export function selectEndpoints(config: AgentConfig, names: readonly string[], all: boolean): EndpointSpec[] {
  if (!all && names.length === 0) throw invalid('Name the endpoints to start, or pass --all')
  if (all) {
    if (config.endpoints.length === 0) throw invalid(`No endpoints in ${config.sources.join(', ') || 'the config (no config file found)'}`)
    return config.endpoints.map(endpointFromEntry)
  }
  return names.map((name) => {
    const found = config.endpoints.find((e) => e.entry.name === name)
    if (!found) {
      const known = config.endpoints.map((e) => e.entry.name)
      throw invalid(`No endpoint named "${name}" in ${config.sources.join(', ') || 'the config'}${known.length ? ` (known: ${known.join(', ')})` : ''}`)
    }
    return endpointFromEntry(found)
  })
}
