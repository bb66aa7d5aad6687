import { isAbsolute, resolve } from 'node:path'
import { CODES, WarrenError } from '../lib/errors.ts'

/** The three kinds of agent endpoint: what the edge sends on a proxy stream. */
export type EndpointKind = 'http' | 'tcp' | 'tls'

/** Where the agent sends the traffic of one endpoint. `text` is what logs and `Forwarding` lines show. */
export type Upstream =
  | {
      kind: 'net'
      host: string
      port: number
      /** Open TLS to the upstream (https://, tls://, or port 443 on an HTTP endpoint). */
      tls: boolean
      /** Check the upstream's certificate (off by default, as in ngrok: local certificates are rarely valid). */
      verify: boolean
      text: string
    }
  | { kind: 'unix'; path: string; tls: boolean; verify: boolean; text: string }
  | {
      kind: 'file'
      root: string
      /** Serve names that start with a dot (`.env`, `.git/`); hidden (404) unless asked for. */
      dotfiles: boolean
      text: string
    }

export interface UpstreamOptions {
  endpoint: EndpointKind
  /** Verify TLS certificates of https:// and tls:// upstreams. */
  verifyTls?: boolean
  /** file:// upstreams: serve dotfiles too. Refused for any other upstream, where it would mean nothing. */
  dotfiles?: boolean
}

function fail(raw: string, why: string): never {
  throw new WarrenError(CODES.CONFIG_INVALID, `Invalid upstream "${raw}": ${why}`)
}

function portOf(raw: string, text: string): number {
  if (!/^\d{1,5}$/.test(text)) fail(raw, `port "${text}" is not a number`)
  const port = Number(text)
  if (port < 1 || port > 65535) fail(raw, `port ${port} is outside 1-65535`)
  return port
}

/** `host:port`, `[v6]:port` or a bare host; the port may be missing (then undefined). */
function splitHostPort(raw: string, authority: string): { host: string; port: number | undefined } {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']')
    if (end === -1) fail(raw, 'unclosed "[" in an IPv6 address')
    const rest = authority.slice(end + 1)
    if (rest !== '' && !rest.startsWith(':')) fail(raw, 'expected ":port" after the IPv6 address')
    return { host: authority.slice(1, end), port: rest ? portOf(raw, rest.slice(1)) : undefined }
  }
  const colon = authority.lastIndexOf(':')
  if (colon === -1) return { host: authority, port: undefined }
  if (authority.indexOf(':') !== colon) fail(raw, 'put IPv6 addresses in brackets, e.g. [::1]:8080')
  return { host: authority.slice(0, colon), port: portOf(raw, authority.slice(colon + 1)) }
}

/** A host as it goes before `:port`: IPv6 literals in brackets. */
export function hostText(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}

/** `file:///srv/www`, `file:///C:/www`, `file://C:\www` → an absolute path (Windows paths kept as given). */
function filePath(raw: string): string {
  let rest = raw.slice('file://'.length)
  if (rest.startsWith('localhost/')) rest = rest.slice('localhost'.length)
  let path: string
  try {
    path = decodeURIComponent(rest)
  } catch {
    fail(raw, 'the path is not valid percent-encoding')
  }
  // file:///C:/x has a slash in front of the drive letter.
  if (/^\/[A-Za-z]:[\\/]/.test(path)) path = path.slice(1)
  if (/^[A-Za-z]:[\\/]/.test(path)) return path.replace(/\\/g, '/')
  if (!path.startsWith('/')) fail(raw, 'file:// needs an absolute path, e.g. file:///srv/www')
  return path.length > 1 ? path.replace(/\/+$/, '') : path
}

/**
 * Parses an upstream as users type it for `warren http|tcp|tls` and `upstream.url`: a port (`8080`),
 * `host:port`, `http://…`, `https://…` (TLS without verification unless asked), `tcp://`/`tls://`,
 * `file:///abs/path` (built-in file server), or a unix socket (`unix:/run/app.sock`).
 *
 * @example parseUpstream('8080', { endpoint: 'http' }) // { kind: 'net', host: 'localhost', port: 8080, tls: false, … }
 */
export function parseUpstream(raw: string | number, options: UpstreamOptions): Upstream {
  const text = String(raw).trim()
  const verify = options.verifyTls ?? false
  const kind = options.endpoint
  if (text === '') fail(text, 'it is empty')

  if (/^file:/i.test(text)) {
    if (kind !== 'http') fail(text, 'file:// upstreams only work on http endpoints')
    if (!/^file:\/\//i.test(text)) fail(text, 'write it as file:///absolute/path')
    const root = filePath(text)
    return { kind: 'file', root, dotfiles: options.dotfiles ?? false, text: `file://${root.startsWith('/') ? '' : '/'}${root}` }
  }
  if (options.dotfiles) fail(text, 'serving dotfiles only applies to file:// upstreams')

  if (/^unix:/i.test(text)) {
    let path = text.slice('unix:'.length)
    if (path.startsWith('//')) path = path.slice(2)
    if (path === '') fail(text, 'a socket path is required, e.g. unix:/run/app.sock')
    if (!isAbsolute(path)) path = resolve(path)
    return { kind: 'unix', path, tls: false, verify, text: `unix:${path}` }
  }

  const schemeMatch = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text)
  const scheme = schemeMatch?.[1]!.toLowerCase()
  if (scheme !== undefined && !['http', 'https', 'tcp', 'tls'].includes(scheme))
    fail(text, `scheme "${scheme}" is not one of http, https, tcp, tls, file, unix`)
  let rest = schemeMatch ? text.slice(schemeMatch[0].length) : text
  const slash = rest.search(/[/?#]/)
  if (slash !== -1) {
    if (rest.slice(slash) !== '/') fail(text, 'a path, query or fragment is not supported; the request path is passed through unchanged')
    rest = rest.slice(0, slash)
  }
  if (rest.includes('@')) fail(text, 'user information is not allowed')

  let host: string
  let port: number | undefined
  if (/^\d+$/.test(rest)) {
    if (scheme !== undefined) fail(text, 'a hostname is required after the scheme')
    host = 'localhost'
    port = portOf(text, rest)
  } else {
    ;({ host, port } = splitHostPort(text, rest))
    if (host === '') fail(text, 'a hostname is required')
  }

  // A tls:// endpoint passes the client's TLS through: the upstream terminates it, never the agent.
  let tls = scheme === 'https' || scheme === 'tls'
  if (kind === 'http' && scheme === undefined && port === 443) tls = true
  if (kind === 'tls') tls = false
  if (port === undefined) {
    if (scheme === 'https') port = 443
    else if (scheme === 'http') port = 80
    else if (kind === 'http' && scheme === undefined) port = 80
    else fail(text, 'a port is required')
  }
  const display =
    kind === 'http' ? `${tls ? 'https' : 'http'}://${hostText(host)}:${port}` : `${tls ? 'tls://' : ''}${hostText(host)}:${port}`
  return { kind: 'net', host: host.toLowerCase(), port, tls, verify, text: display }
}

/**
 * The Host an upstream expects (`--host-header rewrite`): its host, with the port unless it is the
 * scheme's default (`localhost:8080`, `api.lan`, `[::1]:9000`); `localhost` for sockets and files.
 *
 * @example upstreamHost(parseUpstream('8080', { endpoint: 'http' })) // 'localhost:8080'
 */
export function upstreamHost(up: Upstream): string {
  if (up.kind !== 'net') return 'localhost'
  const defaultPort = up.tls ? 443 : 80
  return up.port === defaultPort ? hostText(up.host) : `${hostText(up.host)}:${up.port}`
}
