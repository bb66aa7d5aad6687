import { parseSource } from '../config/document.ts'
import { CODES, WarrenError } from '../lib/errors.ts'
import { field } from './proto/messages.ts'

/** A Bind option the edge cannot honour: the bind is refused with this text (never silently ignored). */
export class UnsupportedOption extends Error {
  override name = 'UnsupportedOption'
}

type Rule = { name?: string; expressions?: string[]; actions: { type: string; config?: unknown }[] }
export interface PolicyDraft {
  on_tcp_connect: Rule[]
  on_http_request: Rule[]
  on_http_response: Rule[]
}

function present(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === '' || v === 0) return false
  if (Array.isArray(v)) return v.length > 0
  if (typeof v === 'object') return Object.values(v as object).some(present)
  return true
}

function list(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []
}

/** The first of `keys` the module has (Go agents send `ClientID`, others `client_id`). */
function pick(module: unknown, ...keys: string[]): unknown {
  for (const key of keys) {
    const v = field(module, key)
    if (v !== undefined && v !== null) return v
  }
  return undefined
}

/** What may stand in an allowed email or domain: no spaces, quotes or backslashes (it goes into a CEL string). */
const ALLOWED_NAME = /^[^\s"'\\,]+$/

/**
 * The `OAuth` / `OIDC` module of a Bind as the same actions a policy would use: the login action,
 * then a `deny` rule over its identity for the allowed emails and domains (ngrok's allow lists).
 */
function identityRules(module: unknown, kind: 'OAuth' | 'OIDC'): Rule[] {
  if (present(pick(module, 'SealedClientSecret', 'sealed_client_secret')))
    throw new UnsupportedOption(`This warren edge cannot unseal a sealed ${kind} client secret; send the client secret itself over the TLS session.`)
  const text = (...keys: string[]) => {
    const v = pick(module, ...keys)
    return typeof v === 'string' && v !== '' ? v : undefined
  }
  const config: Record<string, unknown> = {}
  if (kind === 'OAuth') config.provider = text('Provider', 'provider')
  else config.issuer_url = text('IssuerURL', 'issuer_url', 'issuer')
  const clientId = text('ClientID', 'client_id')
  const clientSecret = text('ClientSecret', 'client_secret')
  if (clientId !== undefined) config.client_id = clientId
  if (clientSecret !== undefined) config.client_secret = clientSecret
  const scopes = list(pick(module, 'Scopes', 'scopes'))
  if (scopes.length) config.scopes = scopes
  const type = kind === 'OAuth' ? 'oauth' : 'openid-connect'
  const rules: Rule[] = [{ name: `agent ${type}`, actions: [{ type, config }] }]
  const emails = list(pick(module, 'AllowEmails', 'allow_emails')).map((e) => e.toLowerCase())
  const domains = list(pick(module, 'AllowDomains', 'allow_domains')).map((d) => d.toLowerCase().replace(/^@/, ''))
  for (const name of [...emails, ...domains]) if (!ALLOWED_NAME.test(name)) throw new UnsupportedOption(`${kind} allow list: "${name}" is not an email address or domain.`)
  if (emails.length || domains.length) {
    const email = `actions.ngrok.${kind === 'OAuth' ? 'oauth' : 'openid_connect'}.identity.email.lowerAscii()`
    const allowed = [...(emails.length ? [`${email} in [${emails.map((e) => `'${e}'`).join(', ')}]`] : []), ...domains.map((d) => `${email}.endsWith('@${d}')`)]
    rules.push({ name: `agent ${type} allow list`, expressions: [`!(${allowed.join(' || ')})`], actions: [{ type: 'deny', config: { status_code: 403 } }] })
  }
  return rules
}

/** `"name: value"` / `"name:value"` strings from the agents' header options. */
function headerPairs(values: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const h of values) {
    const i = h.indexOf(':')
    if (i > 0) out[h.slice(0, i).trim()] = h.slice(i + 1).trim()
  }
  return out
}

/**
 * Turns the module options of a Bind (`BasicAuth`, `IPRestriction`, `RequestHeaders`, …) into
 * traffic-policy rules that run before the agent's own `TrafficPolicy`, so one engine enforces both.
 * Options warren cannot enforce throw UnsupportedOption.
 */
export function policyFromOpts(opts: unknown, scheme: string): PolicyDraft {
  const draft: PolicyDraft = { on_tcp_connect: [], on_http_request: [], on_http_response: [] }
  const http = scheme === 'http' || scheme === 'https'
  const unsupported: Record<string, string> = {
    SAML: 'SAML',
    MutualTLSCA: 'mutual TLS at the edge',
    MutualTLSAtEdge: 'mutual TLS at the edge',
    UserAgentFilter: 'the user-agent filter',
    WebsocketTCPConverter: 'the websocket-to-TCP converter',
    TLSTermination: 'TLS termination at the edge with agent-supplied certificates',
    HostHeaderRewrite: 'host header rewriting at the edge (rewrite it in the agent)',
    Auth: 'legacy "auth" credentials (use basic auth)',
  }
  for (const [key, what] of Object.entries(unsupported))
    if (present(field(opts, key))) throw new UnsupportedOption(`This warren edge does not support ${what} yet.`)

  const ipr = field(opts, 'IPRestriction')
  if (present(ipr)) {
    const allow = list(field(ipr, 'allow_cidrs'))
    const deny = list(field(ipr, 'deny_cidrs'))
    draft[http ? 'on_http_request' : 'on_tcp_connect'].push({
      name: 'agent ip restriction',
      actions: [{ type: 'restrict-ips', config: { allow: allow.length ? allow : deny.length ? ['0.0.0.0/0', '::/0'] : [], deny } }],
    })
  }
  if (!http) return draft

  for (const kind of ['OAuth', 'OIDC'] as const) {
    const module = field(opts, kind)
    if (present(module)) draft.on_http_request.push(...identityRules(module, kind))
  }
  const basic = field(opts, 'BasicAuth')
  if (present(basic)) {
    const credentials = (field(basic, 'credentials') as unknown[] | undefined) ?? []
    const pairs = credentials.map((c) => {
      if (present(field(c, 'hashed_password'))) throw new UnsupportedOption('This warren edge does not support hashed basic-auth passwords; send cleartext ones over the TLS session.')
      return `${String(field(c, 'username') ?? '')}:${String(field(c, 'cleartext_password') ?? '')}`
    })
    draft.on_http_request.push({ name: 'agent basic auth', actions: [{ type: 'basic-auth', config: { credentials: pairs } }] })
  }
  for (const [key, phase] of [['RequestHeaders', 'on_http_request'], ['ResponseHeaders', 'on_http_response']] as const) {
    const h = field(opts, key)
    if (!present(h)) continue
    const add = { ...headerPairs(list(field(h, 'add'))), ...((field(h, 'add_parsed') as Record<string, string> | undefined) ?? {}) }
    const remove = list(field(h, 'remove'))
    const actions: Rule['actions'] = []
    if (remove.length) actions.push({ type: 'remove-headers', config: { headers: remove } })
    if (Object.keys(add).length) actions.push({ type: 'add-headers', config: { headers: add } })
    if (actions.length) draft[phase].push({ name: `agent ${key}`, actions })
  }
  // ngrok's `--verify-webhook` / the SDKs' webhook verification: the same check as the verify-webhook action.
  const webhook = field(opts, 'WebhookVerification')
  if (present(webhook)) {
    if (present(field(webhook, 'sealed_secret'))) throw new UnsupportedOption('This warren edge does not support sealed webhook secrets; send the secret over the TLS session.')
    const provider = String(field(webhook, 'provider') ?? '')
    const secret = String(field(webhook, 'secret') ?? '')
    draft.on_http_request.push({ name: 'agent webhook verification', actions: [{ type: 'verify-webhook', config: { provider, secret } }] })
  }
  const compression = field(opts, 'Compression')
  if (present(compression)) draft.on_http_response.push({ name: 'agent compression', actions: [{ type: 'compress-response' }] })
  const breaker = field(opts, 'CircuitBreaker')
  if (present(breaker)) {
    const threshold = Number(field(breaker, 'error_threshold'))
    draft.on_http_request.push({
      name: 'agent circuit breaker',
      actions: [{ type: 'circuit-breaker', config: Number.isFinite(threshold) && threshold > 0 ? { error_threshold: threshold } : {} }],
    })
  }
  return draft
}

/**
 * Parses the agent's `TrafficPolicy` option (YAML or JSON text; ngrok also accepts an object).
 * Text that is not YAML, or whose aliases expand too far, throws a WarrenError naming `line:col`.
 */
export function parsePolicyText(text: unknown): unknown {
  if (text === null || text === undefined || text === '') return undefined
  if (typeof text !== 'string') return text
  const parsed = parseSource(text)
  if ('errors' in parsed) {
    const e = parsed.errors[0]!
    throw new WarrenError(e.code ?? CODES.POLICY_FILE_SYNTAX, `${e.line}:${e.col}: ${e.message}`)
  }
  return parsed.doc.value
}

/** Module rules first, then the agent's policy, phase by phase. */
export function mergePolicies(draft: PolicyDraft, user: unknown): unknown {
  if (user === undefined) return draft
  if (user === null || typeof user !== 'object' || Array.isArray(user)) return user
  const merged: Record<string, unknown> = { ...(user as Record<string, unknown>) }
  for (const phase of ['on_tcp_connect', 'on_http_request', 'on_http_response'] as const) {
    const theirs = merged[phase]
    if (draft[phase].length === 0) continue
    merged[phase] = [...draft[phase], ...(Array.isArray(theirs) ? theirs : [])]
  }
  return merged
}
