import { parseArgs } from 'node:util'
import { ENDPOINT_FLAGS, endpointsFromFlags, type EndpointFlagValues } from '../../agent/flags.ts'
import { bindRequest } from '../../agent/spec.ts'
import type { EndpointKind } from '../../agent/upstream.ts'
import { CODES, WarrenError } from '../../lib/errors.ts'

/**
 * The agent flags an SSH command takes. The rest make no sense without an agent: where to connect
 * and how to log (the SSH connection is the session), upstream options (the SSH client dials the
 * upstream, plain TCP only) and agent-side TLS termination.
 */
const SSH_FLAG_NAMES = [
  'url',
  'binding',
  'pooling-enabled',
  'traffic-policy-file',
  'upstream-proxy-protocol',
  'name',
  'description',
  'metadata',
  'domain',
  'hostname',
  'subdomain',
  'remote-addr',
  'proxy-proto',
  'basic-auth',
  'request-header-add',
  'request-header-remove',
  'response-header-add',
  'response-header-remove',
  'cidr-allow',
  'cidr-deny',
  'scheme',
  'schemes',
  'host-header',
  'verify-webhook',
  'verify-webhook-secret',
  'oauth',
  'oauth-client-id',
  'oauth-client-secret',
  'oauth-scope',
  'oauth-allow-email',
  'oauth-allow-domain',
  'oidc',
  'oidc-client-id',
  'oidc-client-secret',
  'oidc-scope',
  'oidc-allow-email',
  'oidc-allow-domain',
] as const satisfies readonly (keyof typeof ENDPOINT_FLAGS)[]

const SSH_FLAGS = Object.fromEntries(SSH_FLAG_NAMES.map((n) => [n, ENDPOINT_FLAGS[n]])) as Pick<typeof ENDPOINT_FLAGS, (typeof SSH_FLAG_NAMES)[number]>

/** Agent flags that ask for something only an agent can do, and why SSH cannot. */
const AGENT_ONLY: Record<string, string> = {
  crt: 'TLS termination in the agent (--crt/--key) needs the agent: `warren tls`',
  key: 'TLS termination in the agent (--crt/--key) needs the agent: `warren tls`',
  'upstream-protocol': 'HTTP/2 to the upstream needs the agent: the SSH client forwards plain TCP',
  'upstream-tls-verify': 'https upstreams need the agent: the SSH client forwards plain TCP',
}

export const SSH_USAGE = `usage: ssh -R [bind_addr:]port:host:hostport <user>@<edge> -p <port> http|tcp|tls [flags]
  http  -R 0:localhost:80 (https) · -R 80:… (http) · -R 443:… (https) · -R app.example.com:443:… (owned domain)
  tcp   -R 0:localhost:22 (a free port of the account) · -R 20001:localhost:22 (that port)
  tls   -R app.example.com:443:localhost:443 (passthrough by SNI)
flags: ${SSH_FLAG_NAMES.map((n) => `--${n}`).join(' ')}
(--traffic-policy-file takes the policy text itself; quote it for the remote side)`

/** A parsed SSH command: which kind of endpoint each `-R` forward becomes, with the agent's flags. */
export interface SshCommand {
  kind: EndpointKind
  values: EndpointFlagValues
}

/** One `-R` as the client asked for it (OpenSSH's `tcpip-forward` request). */
export interface SshForward {
  bindAddr: string
  bindPort: number
}

function invalid(message: string): WarrenError {
  return new WarrenError(CODES.SSH_COMMAND_INVALID, message)
}

function unsupported(message: string): WarrenError {
  return new WarrenError(CODES.SSH_UNSUPPORTED, message)
}

/**
 * Splits the command text like a POSIX shell would (single and double quotes, backslash escapes).
 * OpenSSH joins the client's arguments with spaces, so `--request-header-add='host: localhost'`
 * arrives as two words; a header flag whose value ends in `:` takes the next word back.
 */
export function splitCommand(text: string): string[] {
  const words: string[] = []
  let word = ''
  let inWord = false
  let quote: '"' | "'" | undefined
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quote === "'") {
      if (c === "'") quote = undefined
      else word += c
    } else if (quote === '"') {
      if (c === '"') quote = undefined
      else if (c === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1]!)) word += text[++i]
      else word += c
    } else if (c === "'" || c === '"') {
      quote = c
      inWord = true
    } else if (c === '\\' && i + 1 < text.length) {
      word += text[++i]
      inWord = true
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word)
      word = ''
      inWord = false
    } else {
      word += c
      inWord = true
    }
  }
  if (quote) throw invalid(`unterminated ${quote} quote in the command`)
  if (inWord) words.push(word)
  const joined: string[] = []
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!
    const next = words[i + 1]
    const headerValue = /^--(request|response)-header-add=.*:$/.test(w) || (/:$/.test(w) && /^--(request|response)-header-add$/.test(words[i - 1] ?? ''))
    if (headerValue && next !== undefined && !next.startsWith('--')) {
      joined.push(`${w} ${next}`)
      i++
    } else joined.push(w)
  }
  return joined
}

/**
 * Parses the command of an SSH session (`http --basic-auth u:p`, `tcp`, `tls --url …`). Throws
 * WarrenError: SSH_COMMAND_INVALID for a missing or unknown command or bad flags, SSH_UNSUPPORTED for
 * what only the agent can do (https upstreams, file serving, agent TLS termination).
 */
export function parseSshCommand(text: string): SshCommand {
  const words = splitCommand(text)
  const name = words[0]?.toLowerCase()
  if (name === undefined) throw invalid(`a command is required: http, tcp or tls\n${SSH_USAGE}`)
  if (name !== 'http' && name !== 'tcp' && name !== 'tls') throw invalid(`unknown command "${words[0]}": use http, tcp or tls\n${SSH_USAGE}`)
  for (const w of words.slice(1)) {
    const flag = /^--([a-z0-9-]+)/i.exec(w)?.[1]?.toLowerCase()
    if (flag && flag in AGENT_ONLY) throw unsupported(`--${flag}: ${AGENT_ONLY[flag]}`)
  }
  let parsed: { values: EndpointFlagValues; positionals: string[] }
  try {
    parsed = parseArgs({ args: words.slice(1), options: SSH_FLAGS, allowPositionals: true, strict: true }) as typeof parsed
  } catch (err) {
    throw invalid(`${(err as Error).message}\n${SSH_USAGE}`)
  }
  const upstream = parsed.positionals[0]
  if (upstream !== undefined) {
    if (/^file:|^[./~]/i.test(upstream)) throw unsupported('serving files is not supported over SSH: run `warren http file:///path` (the agent)')
    if (/^https:/i.test(upstream)) throw unsupported('https upstreams are not supported over SSH (the SSH client forwards plain TCP): run `warren http https://…` (the agent)')
    throw invalid(`unexpected argument "${upstream}": the upstream is the target of -R (e.g. -R 0:localhost:8080)`)
  }
  if (parsed.values['host-header']?.toLowerCase() === 'rewrite')
    throw unsupported('--host-header=rewrite needs to know the upstream, which only the SSH client knows: give the host, e.g. --host-header=localhost:8080')
  return { kind: name, values: parsed.values }
}

/** Bind addresses that mean "no particular name" (OpenSSH sends `localhost` when the user gave none). */
const ANY_ADDRESS = new Set(['', 'localhost', '0.0.0.0', '*', '::', '127.0.0.1', '::1'])

function forwardError(message: string): WarrenError {
  return new WarrenError(CODES.SSH_FORWARD_INVALID, message)
}

/**
 * The Bind request (as ngrok's agents send it) for one `-R` forward of an SSH command, following
 * ngrok's SSH rules: for http the port picks the scheme (80 http, 443 https, 0 https or `--scheme`),
 * for tcp 0 is a free port of the account and any other port is that port, for tls 0 or 443; a bind
 * address other than localhost is the endpoint's name (`-R app.example.com:443:…`, `-R '*.example.com:443:…'`).
 * The registry then applies the same ownership and policy rules as to any agent.
 */
export function sshBindRequest(command: SshCommand, forward: SshForward, options: { domain: string; description: string }): Record<string, unknown> {
  const values: { -readonly [K in keyof EndpointFlagValues]: EndpointFlagValues[K] } = { ...command.values }
  const host = ANY_ADDRESS.has(forward.bindAddr.toLowerCase()) ? undefined : forward.bindAddr.toLowerCase()
  const port = forward.bindPort
  const named = values.url ?? values.domain ?? values.hostname ?? values.subdomain ?? values['remote-addr']
  if (host && named !== undefined) throw forwardError(`the name comes from -R ${forward.bindAddr}:${port}:…; drop --url/--domain/--hostname/--subdomain/--remote-addr`)
  if (command.kind === 'http') {
    const asked = [...(values.scheme ?? []), ...(values.schemes ?? [])].flatMap((s) => s.split(',')).map((s) => s.trim().toLowerCase()).filter(Boolean)
    if (new Set(asked).size > 1) throw forwardError('an SSH forward serves http or https, not both: run one ssh -R per scheme')
    const byPort = port === 80 ? 'http' : port === 443 ? 'https' : port === 0 ? undefined : null
    if (byPort === null) throw forwardError(`-R ${port}: http endpoints use port 0, 80 (http) or 443 (https)`)
    const scheme = byPort ?? asked[0] ?? (values.url && /^http:/i.test(values.url) ? 'http' : 'https')
    if (asked[0] !== undefined && asked[0] !== scheme) throw forwardError(`-R ${port} serves ${scheme}, but --scheme says ${asked[0]}`)
    values.scheme = [scheme]
    delete values.schemes
    if (host) values.url = `${scheme}://${host}`
    else if (values.url && !/^[a-z]+:\/\//i.test(values.url)) values.url = `${scheme}://${values.url}`
    else if (values.url) values.url = values.url.replace(/^https?:\/\//i, `${scheme}://`)
    if (values.url) delete values.scheme
  } else if (command.kind === 'tcp') {
    if (port !== 0) {
      if (values.url !== undefined || values['remote-addr'] !== undefined) throw forwardError(`-R ${port} already names the port; drop --url/--remote-addr or use -R 0`)
      values.url = `tcp://${host ?? `tcp.${options.domain}`}:${port}`
    }
  } else {
    if (port !== 0 && port !== 443) throw forwardError(`-R ${port}: tls endpoints use port 0 or 443`)
    if (host) values.url = `tls://${host}`
  }
  const policy = values['traffic-policy-file']
  delete values['traffic-policy-file']
  const spec = endpointsFromFlags(command.kind, 'localhost:80', values)[0]!
  spec.trafficPolicy = policy
  const request = bindRequest(spec, '')
  request.ForwardsTo = options.description
  return request
}
