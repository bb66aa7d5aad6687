import { parseArgs } from 'node:util'
import { loadServerConfig, splitAddress } from '../config/server.ts'

export const API_USAGE = `warren api endpoints list [--url URL] [--binding public|internal] [--type cloud|agent] [--limit N] [--before-id ID]
warren api endpoints get ID
warren api endpoints create --url URL [--traffic-policy TEXT] [--binding B] [--description D] [--metadata M] [--pooling-enabled]
warren api endpoints update ID [--url URL] [--traffic-policy TEXT] [--binding B] [--description D] [--metadata M] [--pooling-enabled|--no-pooling-enabled]
warren api endpoints delete ID
warren api sessions list
warren api sessions get ID
warren api sessions stop ID      (ends the agent's session; it reconnects and keeps its URLs)
warren api sessions restart ID   (asks the agent to restart)
warren api certificates
warren api status
  common: [--api-url URL (default: http://<listen.api>)] [--api-key KEY (default: $WARREN_API_KEY)] [--config FILE]`

const OPTIONS = {
  'api-url': { type: 'string' },
  'api-key': { type: 'string' },
  config: { type: 'string' },
  url: { type: 'string' },
  binding: { type: 'string' },
  type: { type: 'string' },
  limit: { type: 'string' },
  'before-id': { type: 'string' },
  'traffic-policy': { type: 'string' },
  description: { type: 'string' },
  metadata: { type: 'string' },
  'pooling-enabled': { type: 'boolean' },
  'no-pooling-enabled': { type: 'boolean' },
} as const

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values']

/** The API base URL: `--api-url`, else `listen.api` from warren.yaml (a wildcard address means this host). */
function apiBase(values: Values): string {
  if (values['api-url']) return values['api-url'].replace(/\/+$/, '')
  const config = loadServerConfig(values.config ? { config: values.config } : {})
  const { hostname, port } = splitAddress(config.listen.api)
  const host = hostname === '0.0.0.0' || hostname === '' ? '127.0.0.1' : hostname === '::' ? '[::1]' : hostname.includes(':') ? `[${hostname}]` : hostname
  return `http://${host}:${port}`
}

/** The create/update body from flags; only flags given are sent (an update leaves the rest alone). */
function endpointBody(values: Values): Record<string, unknown> {
  const body: Record<string, unknown> = {}
  if (values.url !== undefined) body.url = values.url
  if (values.binding !== undefined) body.bindings = [values.binding]
  if (values['traffic-policy'] !== undefined) body.traffic_policy = values['traffic-policy']
  if (values.description !== undefined) body.description = values.description
  if (values.metadata !== undefined) body.metadata = values.metadata
  if (values['pooling-enabled']) body.pooling_enabled = true
  if (values['no-pooling-enabled']) body.pooling_enabled = false
  return body
}

function usage(message: string): number {
  process.stderr.write(`warren api: ${message}\n${API_USAGE}\n`)
  return 2
}

/**
 * `warren api …`: a thin client of the REST API. Answers are printed as JSON on stdout; API errors
 * are printed as JSON on stderr and exit 1.
 */
export async function apiCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true })
  const [resource, verb, id, ...extra] = positionals
  let method = 'GET'
  let path: string
  let body: Record<string, unknown> | undefined
  if (resource === 'status' && verb === undefined) path = '/status'
  else if (resource === 'certificates' && verb === undefined) path = '/certificates'
  else if (resource === 'sessions') {
    const needsId = verb === 'get' || verb === 'stop' || verb === 'restart'
    if (needsId && !id) return usage(`sessions ${verb} needs a session id`)
    if (extra.length || (!needsId && id !== undefined)) return usage(`unexpected argument "${extra[0] ?? id}"`)
    const at = `/tunnel-sessions/${encodeURIComponent(id ?? '')}`
    switch (verb) {
      case 'list':
        path = '/tunnel-sessions'
        break
      case 'get':
        path = at
        break
      case 'stop':
      case 'restart':
        method = 'POST'
        path = `${at}/${verb}`
        break
      default:
        return usage(verb ? `unknown sessions command "${verb}"` : 'missing sessions command')
    }
  } else if (resource === 'endpoints') {
    const needsId = verb === 'get' || verb === 'update' || verb === 'delete'
    if (needsId && !id) return usage(`endpoints ${verb} needs an endpoint id`)
    if (extra.length || (!needsId && id !== undefined)) return usage(`unexpected argument "${extra[0] ?? id}"`)
    const at = `/endpoints/${encodeURIComponent(id ?? '')}`
    switch (verb) {
      case 'list': {
        const query = new URLSearchParams()
        for (const [flag, param] of [['url', 'url'], ['binding', 'binding'], ['type', 'type'], ['limit', 'limit'], ['before-id', 'before_id']] as const) {
          const value = values[flag]
          if (value !== undefined) query.set(param, value)
        }
        path = `/endpoints${query.size ? `?${query}` : ''}`
        break
      }
      case 'get':
        path = at
        break
      case 'create':
        if (values.url === undefined) return usage('endpoints create needs --url')
        method = 'POST'
        path = '/endpoints'
        body = endpointBody(values)
        break
      case 'update':
        method = 'PATCH'
        path = at
        body = endpointBody(values)
        if (Object.keys(body).length === 0) return usage('endpoints update needs at least one field flag')
        break
      case 'delete':
        method = 'DELETE'
        path = at
        break
      default:
        return usage(verb ? `unknown endpoints command "${verb}"` : 'missing endpoints command')
    }
  } else return usage(resource ? `unknown API resource "${resource}"` : 'missing API resource')

  const base = apiBase(values)
  const key = values['api-key'] ?? process.env.WARREN_API_KEY
  const headers: Record<string, string> = { accept: 'application/json' }
  if (key) headers.authorization = `Bearer ${key}`
  if (body) headers['content-type'] = 'application/json'
  let res: Response
  try {
    res = await fetch(`${base}${path}`, { method, headers, ...(body ? { body: JSON.stringify(body) } : {}) })
  } catch (err) {
    process.stderr.write(`warren api: cannot reach the warren API at ${base}: ${(err as Error).message}\n`)
    return 1
  }
  const text = await res.text()
  let json: unknown
  try {
    json = text === '' ? undefined : JSON.parse(text)
  } catch {
    process.stderr.write(`warren api: ${method} ${base}${path} answered ${res.status} with non-JSON: ${text.slice(0, 200)}\n`)
    return 1
  }
  if (!res.ok) {
    // Without a key, say where one goes; inside the JSON so scripts still parse stderr as one document.
    const hint = res.status === 401 && !key ? { hint: "no API key was given: pass --api-key KEY or set WARREN_API_KEY (one of api_keys in the edge's warren.yaml)" } : {}
    process.stderr.write(JSON.stringify({ ...((json as object | undefined) ?? { status_code: res.status }), ...hint }, null, 2) + '\n')
    return 1
  }
  // DELETE, stop and restart answer 204 without a body; say what happened so scripts still get JSON.
  const done = resource === 'sessions' ? { id, [verb === 'stop' ? 'stopped' : 'restarted']: true } : { id, deleted: true }
  process.stdout.write(JSON.stringify(json ?? done, null, 2) + '\n')
  return 0
}
