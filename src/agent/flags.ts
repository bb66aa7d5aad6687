import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { formatEndpointUrl, parseEndpointUrl, type Scheme } from '../config/url.ts'
import { parseDuration } from '../lib/duration.ts'
import { CODES, WarrenError } from '../lib/errors.ts'
import type { Level } from '../lib/log.ts'
import { Secret } from '../lib/secret.ts'
import type { AgentConfig } from './config.ts'
import { readPolicyFile } from './config.ts'
import { DEFAULT_WEB_ADDR } from '../inspect/server.ts'
import type { LogFormat } from './log-output.ts'
import type { EndpointSpec } from './spec.ts'
import { readAgentTls, type AgentTlsTermination } from './tls-termination.ts'
import { parseUpstream, upstreamHost, type EndpointKind } from './upstream.ts'

/** Flags every agent command takes (where to connect, how to log). */
export const AGENT_FLAGS = {
  config: { type: 'string', multiple: true },
  authtoken: { type: 'string' },
  'server-addr': { type: 'string' },
  'server-ca': { type: 'string' },
  log: { type: 'string' },
  'log-format': { type: 'string' },
  'log-level': { type: 'string' },
  /** Local inspector address, or `false` to turn it off. */
  'web-addr': { type: 'string' },
  inspect: { type: 'boolean' },
  'no-inspect': { type: 'boolean' },
} as const

/**
 * ngrok spells the switch `--inspect=false`; node's parseArgs has no value for booleans, so the
 * spellings are mapped to `--inspect` / `--no-inspect` first.
 */
export function normalizeArgs(args: readonly string[]): string[] {
  return args.map((a) => (/^--inspect=(false|0|no)$/i.test(a) ? '--no-inspect' : /^--inspect=(true|1|yes)$/i.test(a) ? '--inspect' : a))
}

/** Flags of `warren http|tcp|tls`: ngrok v3's, plus the legacy shortcuts users still type. */
export const ENDPOINT_FLAGS = {
  ...AGENT_FLAGS,
  url: { type: 'string' },
  binding: { type: 'string' },
  'pooling-enabled': { type: 'boolean' },
  'traffic-policy-file': { type: 'string' },
  'upstream-tls-verify': { type: 'boolean' },
  'upstream-protocol': { type: 'string' },
  'upstream-proxy-protocol': { type: 'string' },
  /** file:// upstreams: serve names that start with a dot (hidden by default). */
  'upstream-dotfiles': { type: 'boolean' },
  name: { type: 'string' },
  description: { type: 'string' },
  metadata: { type: 'string' },
  // Legacy (ngrok v2) shortcuts, translated into URL and module options the edge enforces.
  domain: { type: 'string' },
  hostname: { type: 'string' },
  subdomain: { type: 'string' },
  'remote-addr': { type: 'string' },
  'proxy-proto': { type: 'string' },
  'basic-auth': { type: 'string', multiple: true },
  /** Check the deliveries' signatures at the edge: the provider (github, stripe, slack, …) and its secret. */
  'verify-webhook': { type: 'string' },
  'verify-webhook-secret': { type: 'string' },
  'request-header-add': { type: 'string', multiple: true },
  'request-header-remove': { type: 'string', multiple: true },
  'response-header-add': { type: 'string', multiple: true },
  'response-header-remove': { type: 'string', multiple: true },
  'cidr-allow': { type: 'string', multiple: true },
  'cidr-deny': { type: 'string', multiple: true },
  scheme: { type: 'string', multiple: true },
  schemes: { type: 'string', multiple: true },
  'host-header': { type: 'string' },
  /** Sign visitors in with a provider preset (google, github, …) using your own OAuth app. */
  oauth: { type: 'string' },
  'oauth-client-id': { type: 'string' },
  'oauth-client-secret': { type: 'string' },
  'oauth-scope': { type: 'string', multiple: true },
  'oauth-allow-email': { type: 'string', multiple: true },
  'oauth-allow-domain': { type: 'string', multiple: true },
  /** Sign visitors in with any OpenID Connect provider (its issuer URL). */
  oidc: { type: 'string' },
  'oidc-client-id': { type: 'string' },
  'oidc-client-secret': { type: 'string' },
  'oidc-scope': { type: 'string', multiple: true },
  'oidc-allow-email': { type: 'string', multiple: true },
  'oidc-allow-domain': { type: 'string', multiple: true },
  /** `warren tls`: terminate TLS in the agent with this certificate and key (PEM files). */
  crt: { type: 'string' },
  key: { type: 'string' },
} as const

export type EndpointFlagValues = {
  [K in keyof typeof ENDPOINT_FLAGS]?: (typeof ENDPOINT_FLAGS)[K] extends { multiple: true }
    ? string[]
    : (typeof ENDPOINT_FLAGS)[K] extends { type: 'boolean' }
      ? boolean
      : string
}

function bad(message: string): WarrenError {
  return new WarrenError(CODES.CONFIG_INVALID, message)
}

/** `--scheme http,https --scheme https` → ['http', 'https']. */
function schemesOf(values: EndpointFlagValues): Scheme[] {
  const raw = [...(values.scheme ?? []), ...(values.schemes ?? [])].flatMap((s) => s.split(',')).map((s) => s.trim().toLowerCase()).filter(Boolean)
  for (const s of raw) if (s !== 'http' && s !== 'https') throw bad(`--scheme must be http or https, not "${s}"`)
  return [...new Set(raw)] as Scheme[]
}

function proxyProtocolOf(text: string | undefined): 0 | 1 | 2 {
  if (text === undefined || text === '' || text === '0') return 0
  if (text === '1' || text === '2') return Number(text) as 1 | 2
  throw bad(`--upstream-proxy-protocol must be 1 or 2, not "${text}"`)
}

const IDENTITY_FLAGS = ['oauth', 'oauth-client-id', 'oauth-client-secret', 'oauth-scope', 'oauth-allow-email', 'oauth-allow-domain', 'oidc', 'oidc-client-id', 'oidc-client-secret', 'oidc-scope', 'oidc-allow-email', 'oidc-allow-domain'] as const

/** Repeatable flags also take comma-separated lists, as ngrok's do. */
function listFlag(values: string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean)
}

/**
 * `--oauth`/`--oidc` and their options as ngrok's agents put them in a Bind (`OAuth`, `OIDC`); the
 * edge turns them into the oauth/openid-connect actions and an allow-list rule.
 */
function identityModules(values: EndpointFlagValues): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [module, flag] of [['OAuth', 'oauth'], ['OIDC', 'oidc']] as const) {
    const main = values[flag]
    const given = IDENTITY_FLAGS.filter((f) => f.startsWith(`${flag}-`) && values[f] !== undefined)
    if (main === undefined) {
      if (given.length) throw bad(`--${given[0]} needs --${flag} ${flag === 'oauth' ? 'PROVIDER' : 'ISSUER_URL'}`)
      continue
    }
    const id = values[`${flag}-client-id`]
    const secret = values[`${flag}-client-secret`]
    if (!id || !secret)
      throw bad(`--${flag} needs --${flag}-client-id and --${flag}-client-secret: register an app with the provider (redirect URL https://<your endpoint>/ngrok/callback); a self-hosted edge has no shared ngrok app to fall back on`)
    const emails = listFlag(values[`${flag}-allow-email`])
    const domains = listFlag(values[`${flag}-allow-domain`])
    for (const e of emails) if (!/^[^\s"'\\@]+@[^\s"'\\@]+$/.test(e)) throw bad(`--${flag}-allow-email takes an email address, not "${e}"`)
    for (const d of domains) if (!/^@?[A-Za-z0-9.-]+$/.test(d)) throw bad(`--${flag}-allow-domain takes a domain such as example.com, not "${d}"`)
    out[module] = {
      ...(flag === 'oauth' ? { Provider: main } : { IssuerURL: main }),
      ClientID: id,
      ClientSecret: secret,
      AllowEmails: emails,
      AllowDomains: domains,
      Scopes: listFlag(values[`${flag}-scope`]),
    }
  }
  if (out.OAuth && out.OIDC) throw bad('use --oauth or --oidc, not both')
  return out
}

/**
 * Translates `warren http|tcp|tls <upstream> [flags]` into the endpoints to bind. Legacy flags become
 * what ngrok's agents put in a Bind (`BasicAuth`, `RequestHeaders`, `IPRestriction`, …), which the
 * edge turns into traffic-policy rules. Several `--scheme`s give one endpoint per scheme.
 *
 * @example endpointsFromFlags('http', '8080', { url: 'app.example.com' })[0].url // 'https://app.example.com'
 */
export function endpointsFromFlags(kind: EndpointKind, upstreamArg: string | undefined, values: EndpointFlagValues): EndpointSpec[] {
  if (!upstreamArg) throw bad(`an upstream is required, e.g. \`warren ${kind} ${kind === 'http' ? '8080' : kind === 'tcp' ? '22' : '443'}\``)
  const protocol = values['upstream-protocol']?.toLowerCase()
  if (protocol !== undefined && protocol !== 'http1' && protocol !== 'http2') throw bad(`--upstream-protocol must be http1 or http2, not "${values['upstream-protocol']}"`)
  const httpOnly = ['basic-auth', 'verify-webhook', 'verify-webhook-secret', 'request-header-add', 'request-header-remove', 'response-header-add', 'response-header-remove', 'scheme', 'schemes', 'subdomain', 'host-header', 'upstream-protocol', 'upstream-dotfiles', ...IDENTITY_FLAGS] as const
  if (kind !== 'http') for (const f of httpOnly) if (values[f] !== undefined) throw bad(`--${f} only applies to http endpoints`)
  if (kind !== 'tcp' && values['remote-addr'] !== undefined) throw bad('--remote-addr only applies to tcp endpoints; use --url')
  for (const f of ['crt', 'key'] as const) if (kind !== 'tls' && values[f] !== undefined) throw bad(`--${f} only applies to tls endpoints`)
  if ((values.crt === undefined) !== (values.key === undefined)) throw bad('--crt and --key go together: the certificate and its private key')

  const requested = values.url ?? values.domain ?? values.hostname ?? (values['remote-addr'] !== undefined ? `tcp://${values['remote-addr']}` : undefined)
  if ([values.url, values.domain, values.hostname, values['remote-addr']].filter((x) => x !== undefined).length > 1)
    throw bad('use only one of --url, --domain, --hostname, --remote-addr')

  const explicit = requested ? /^([a-z]+):\/\//i.exec(requested)?.[1]?.toLowerCase() : undefined
  let schemes: Scheme[]
  if (kind === 'http') {
    schemes = schemesOf(values)
    if (explicit && explicit !== 'http' && explicit !== 'https') throw bad(`warren http needs an http:// or https:// URL, not ${explicit}://`)
    if (explicit && schemes.length && (schemes.length > 1 || schemes[0] !== explicit)) throw bad(`--url ${requested} already says ${explicit}://; drop --scheme`)
    if (schemes.length === 0) schemes = [(explicit as Scheme | undefined) ?? 'https']
  } else {
    if (explicit && explicit !== kind) throw bad(`warren ${kind} needs a ${kind}:// URL, not ${explicit}://`)
    schemes = [kind]
  }

  const binding = values.binding?.toLowerCase()
  if (binding !== undefined && binding !== 'public' && binding !== 'internal') throw bad(`--binding must be public or internal, not "${values.binding}"`)
  const upstream = parseUpstream(upstreamArg, { endpoint: kind, verifyTls: values['upstream-tls-verify'] ?? false, dotfiles: values['upstream-dotfiles'] ?? false })
  const trafficPolicy = values['traffic-policy-file'] ? readPolicyFile(resolve(values['traffic-policy-file'])) : undefined
  const proxyProtocol = proxyProtocolOf(values['upstream-proxy-protocol'] ?? values['proxy-proto'])
  if (protocol === 'http2' && upstream.kind === 'file') throw bad('--upstream-protocol http2 needs a network or unix socket upstream, not file://')
  let tlsTermination: AgentTlsTermination | undefined
  if (values.crt !== undefined && values.key !== undefined) {
    // The PROXY header would reach the agent in front of the ClientHello, where no TLS server reads it.
    if (proxyProtocol) throw bad('--upstream-proxy-protocol cannot be combined with agent TLS termination (--crt/--key)')
    tlsTermination = readAgentTls({ cert: values.crt, key: values.key, base: process.cwd(), names: ['--crt', '--key'] })
  }

  const modules: Record<string, unknown> = {}
  if (values.subdomain) modules.Subdomain = values.subdomain
  if (values['basic-auth']?.length) {
    modules.BasicAuth = {
      credentials: values['basic-auth'].map((pair) => {
        const i = pair.indexOf(':')
        if (i <= 0 || i === pair.length - 1) throw bad(`--basic-auth takes "user:password", got "${pair.includes(':') ? pair.slice(0, i + 1) + '…' : 'HIDDEN'}"`)
        return { username: pair.slice(0, i), cleartext_password: pair.slice(i + 1) }
      }),
    }
  }
  if ((values['verify-webhook'] === undefined) !== (values['verify-webhook-secret'] === undefined))
    throw bad('--verify-webhook and --verify-webhook-secret go together: the provider and its signing secret')
  if (values['verify-webhook'] !== undefined)
    modules.WebhookVerification = { provider: values['verify-webhook'].toLowerCase(), secret: values['verify-webhook-secret'], sealed_secret: '' }
  // ngrok v2's --host-header: the edge sets Host before the request enters the tunnel (its add-headers
  // replaces `host`), as every other legacy header option is applied at the edge.
  const hostHeader = values['host-header']
  let host: string | undefined
  if (hostHeader !== undefined) {
    host = hostHeader.toLowerCase() === 'rewrite' ? upstreamHost(upstream) : hostHeader.trim()
    if (!/^[^\s\x00-\x1f\x7f/?#@]+$/.test(host)) throw bad(`--host-header takes "rewrite" or a host[:port], not "${hostHeader}"`)
  }
  for (const [key, add, remove] of [
    ['RequestHeaders', 'request-header-add', 'request-header-remove'],
    ['ResponseHeaders', 'response-header-add', 'response-header-remove'],
  ] as const) {
    const a = [...(values[add] ?? [])]
    const r = values[remove] ?? []
    for (const h of a) if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+\s*:/.test(h)) throw bad(`--${add} takes "name: value", got "${h}"`)
    if (key === 'RequestHeaders' && host !== undefined) a.push(`host: ${host}`)
    if (a.length || r.length) modules[key] = { add: a, remove: r }
  }
  Object.assign(modules, identityModules(values))
  if (values['cidr-allow']?.length || values['cidr-deny']?.length)
    modules.IPRestriction = { allow_cidrs: values['cidr-allow'] ?? [], deny_cidrs: values['cidr-deny'] ?? [] }

  const baseName = values.name ?? kind
  return schemes.map((scheme) => {
    let url: string | undefined
    if (requested) {
      const text = explicit ? requested.replace(/^[a-z]+:\/\//i, `${scheme}://`) : `${scheme}://${requested}`
      url = formatEndpointUrl(parseEndpointUrl(text, binding ? { binding: binding as 'public' | 'internal' } : {}))
    }
    return {
      name: schemes.length > 1 ? `${baseName}-${scheme}` : baseName,
      kind,
      scheme,
      url,
      bindings: binding ? [binding] : [],
      poolingEnabled: values['pooling-enabled'] ?? false,
      upstream,
      ...(protocol === 'http2' ? { upstreamProtocol: 'http2' as const } : {}),
      ...(tlsTermination ? { tlsTermination } : {}),
      proxyProtocol,
      trafficPolicy,
      description: values.description,
      metadata: values.metadata,
      modules,
    }
  })
}

/** Where and how the agent connects and logs, after flags, environment and config files. */
export interface AgentSettings {
  authtoken: Secret
  serverAddr: string
  /** CA file for the edge (undefined: the default trust store). */
  serverCaPath: string | undefined
  metadata: string | undefined
  log: string | false
  logFormat: LogFormat
  logLevel: Level
  heartbeatIntervalMs: number | undefined
  heartbeatToleranceMs: number | undefined
  /** Inspector address; false when turned off. */
  webAddr: string | false
}

/** The edge's default agent address (`listen.agent` in warren.yaml). */
export const DEFAULT_SERVER_ADDR = 'localhost:4443'

/**
 * Resolves settings: a flag wins over the environment (`WARREN_AUTHTOKEN`, `WARREN_SERVER_ADDR`,
 * `WARREN_SERVER_CA`), which wins over the config files.
 */
export function resolveSettings(
  values: {
    authtoken?: string
    'server-addr'?: string
    'server-ca'?: string
    log?: string
    'log-format'?: string
    'log-level'?: string
    'web-addr'?: string
    'no-inspect'?: boolean
  },
  config: AgentConfig,
  env: Record<string, string | undefined> = process.env,
  isTty: boolean = process.stdout.isTTY === true,
): AgentSettings {
  const a = config.agent
  // An empty variable counts as unset (`WARREN_AUTHTOKEN= warren http 80` uses the config's token).
  env = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''))
  const format = values['log-format'] ?? a.log_format ?? (isTty ? 'term' : 'logfmt')
  if (format !== 'json' && format !== 'logfmt' && format !== 'term') throw bad(`--log-format must be json, logfmt or term, not "${format}"`)
  const level = values['log-level'] ?? a.log_level ?? 'info'
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw bad(`--log-level must be debug, info, warn or error, not "${level}"`)
  const caFlag = values['server-ca'] ?? env.WARREN_SERVER_CA
  let ca = caFlag !== undefined ? resolve(caFlag) : a.connect_cas
  if (ca === 'host' || ca === 'trusted' || caFlag === 'host') ca = undefined
  return {
    authtoken: new Secret(values.authtoken ?? env.WARREN_AUTHTOKEN ?? a.authtoken ?? ''),
    serverAddr: values['server-addr'] ?? env.WARREN_SERVER_ADDR ?? a.connect_url ?? DEFAULT_SERVER_ADDR,
    serverCaPath: ca,
    metadata: a.metadata,
    log: values.log ?? a.log ?? 'stdout',
    logFormat: format,
    logLevel: level as Level,
    heartbeatIntervalMs: a.heartbeat_interval ? parseDuration(a.heartbeat_interval) : undefined,
    heartbeatToleranceMs: a.heartbeat_tolerance ? parseDuration(a.heartbeat_tolerance) : undefined,
    webAddr: values['no-inspect'] ? false : webAddrOf(values['web-addr'] ?? a.web_addr ?? DEFAULT_WEB_ADDR),
  }
}

function webAddrOf(v: string | false): string | false {
  if (v === false || v === 'false' || v === '') return false
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(v)) throw bad(`--web-addr must be host:port or false, not "${v}"`)
  return v
}

/** Reads the CA file named in the settings. */
export function readCa(path: string | undefined): string | undefined {
  if (path === undefined) return undefined
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw bad(`Cannot read the server CA "${path}": ${(err as Error).message}`)
  }
  // Checked here: Bun's own answer to a bad CA is a bare "Invalid CA" thrown from deep in connect().
  const block = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text)?.[0]
  let valid = false
  try {
    valid = block !== undefined && new X509Certificate(block).raw.length > 0
  } catch {}
  if (!valid)
    throw bad(`The server CA "${path}" is not a PEM certificate (-----BEGIN CERTIFICATE-----); pass the CA that issued the edge's agent-port certificate, e.g. the file \`warren ca path\` prints on the edge`)
  return text
}
