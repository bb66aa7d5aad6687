import { CODES, WarrenError } from '../lib/errors.ts'

export type Scheme = 'http' | 'https' | 'tcp' | 'tls'
export type Binding = 'public' | 'internal'

/** A validated endpoint URL. `host` is lower-case and may start with `*.`. */
export interface EndpointUrl {
  scheme: Scheme
  host: string
  /** Explicit port, or undefined when the URL has none (the scheme's public port applies). */
  port: number | undefined
  wildcard: boolean
  binding: Binding
}

const SCHEMES: ReadonlySet<string> = new Set(['http', 'https', 'tcp', 'tls'])
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
/** ngrok allows at most five subdomain labels in front of `.internal`. */
const MAX_INTERNAL_SUBDOMAINS = 5

function fail(raw: string, why: string): never {
  throw new WarrenError(CODES.ENDPOINT_URL_INVALID, `Invalid endpoint URL "${raw}": ${why}`)
}

/**
 * Parses and validates an endpoint URL by the rules ngrok documents for endpoints:
 * schemes http/https/tcp/tls (https when omitted), hostnames with an optional leading wildcard,
 * `.internal` hosts imply the internal binding (at most 5 subdomains, hostname required),
 * ports 1–65535, and tcp needs a port.
 *
 * @example parseEndpointUrl('https://api.internal') // { scheme: 'https', host: 'api.internal', binding: 'internal', … }
 */
export function parseEndpointUrl(raw: string, options: { binding?: Binding } = {}): EndpointUrl {
  const text = raw.trim()
  if (text === '') fail(raw, 'it is empty')
  const schemeMatch = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text)
  const scheme = schemeMatch ? schemeMatch[1]!.toLowerCase() : 'https'
  if (!SCHEMES.has(scheme)) fail(raw, `scheme "${scheme}" is not one of http, https, tcp, tls`)
  const rest = schemeMatch ? text.slice(schemeMatch[0].length) : text
  if (rest.includes('@')) fail(raw, 'user information is not allowed')
  const slash = rest.search(/[/?#]/)
  const authority = slash === -1 ? rest : rest.slice(0, slash)
  const tail = slash === -1 ? '' : rest.slice(slash)
  if (tail !== '' && tail !== '/') fail(raw, 'a path, query or fragment is not allowed')

  let hostPart = authority
  let port: number | undefined
  const colon = authority.lastIndexOf(':')
  if (authority.startsWith('[')) fail(raw, 'IP addresses are not allowed; use a hostname')
  if (colon !== -1) {
    hostPart = authority.slice(0, colon)
    const portText = authority.slice(colon + 1)
    if (!/^\d{1,5}$/.test(portText)) fail(raw, `port "${portText}" is not a number`)
    port = Number(portText)
    if (port < 1 || port > 65535) fail(raw, `port ${port} is outside 1-65535`)
  }
  const host = hostPart.toLowerCase().replace(/\.$/, '')
  if (host === '') fail(raw, 'a hostname is required')
  if (host.length > 253) fail(raw, 'the hostname is longer than 253 characters')
  if (/^\d+(\.\d+){3}$/.test(host)) fail(raw, 'IP addresses are not allowed; use a hostname')

  const labels = host.split('.')
  const wildcard = labels[0] === '*'
  labels.forEach((label, i) => {
    if (label === '*' && i === 0) return
    if (label.includes('*')) fail(raw, 'a wildcard is only allowed as the whole first label ("*.example.com")')
    if (!LABEL.test(label)) fail(raw, `"${label}" is not a valid hostname label`)
  })
  if (wildcard && labels.length < 2) fail(raw, 'a wildcard needs a domain after it ("*.example.com")')

  const internal = labels[labels.length - 1] === 'internal'
  if (internal) {
    if (labels.length < 2) fail(raw, '".internal" needs a hostname in front of it')
    if (labels.length - 1 > MAX_INTERNAL_SUBDOMAINS)
      fail(raw, `internal hostnames may have at most ${MAX_INTERNAL_SUBDOMAINS} subdomains`)
  }
  const binding: Binding = options.binding ?? (internal ? 'internal' : 'public')
  if (binding === 'internal' && !internal) fail(raw, 'internal endpoints must use a hostname ending in ".internal"')
  if (binding === 'public' && internal) fail(raw, '".internal" hostnames can only have the internal binding')
  if (scheme === 'tcp' && port === undefined) fail(raw, 'tcp endpoints must specify a port')

  return { scheme: scheme as Scheme, host, port, wildcard, binding }
}

/** The canonical text of an endpoint URL: what the table, logs and the API show. */
export function formatEndpointUrl(url: EndpointUrl): string {
  return `${url.scheme}://${url.host}${url.port === undefined ? '' : `:${url.port}`}`
}

/** Ports a client reaches without naming one (tcp has none: its URLs always carry a port). */
const SCHEME_PORTS: Readonly<Record<Scheme, number | undefined>> = { http: 80, https: 443, tls: 443, tcp: undefined }

/**
 * The URL as a client must type it: a URL without a port is served on the scheme's public port
 * (`public_ports`, else the listener's), so that port is named unless it is the scheme's default.
 * Only for showing: the table, matching and reconnects keep the canonical `formatEndpointUrl` text.
 *
 * @example publicEndpointUrl(parseEndpointUrl('https://a.warren.localhost'), { https: 8443, … }) // 'https://a.warren.localhost:8443'
 */
export function publicEndpointUrl(url: EndpointUrl, publicPorts: Readonly<Record<Scheme, number>>): string {
  if (url.port !== undefined || url.binding === 'internal') return formatEndpointUrl(url)
  const port = publicPorts[url.scheme]
  return formatEndpointUrl(port === SCHEME_PORTS[url.scheme] ? url : { ...url, port })
}

/**
 * The inverse for URLs clients hand back (an agent re-binding the URL it was shown, an API filter):
 * naming the scheme's public port is the same endpoint as naming none.
 */
export function withoutPublicPort(url: EndpointUrl, publicPorts: Readonly<Record<Scheme, number>>): EndpointUrl {
  return url.scheme !== 'tcp' && url.port === publicPorts[url.scheme] ? { ...url, port: undefined } : url
}
