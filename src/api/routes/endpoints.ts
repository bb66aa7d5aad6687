import { Hono, type Context } from 'hono'
import * as v from 'valibot'
import { describeIssue, parseSource } from '../../config/document.ts'
import { loadPolicyFile } from '../../config/load.ts'
import { formatEndpointUrl, parseEndpointUrl, withoutPublicPort, type EndpointUrl } from '../../config/url.ts'
import type { Endpoint } from '../../endpoints/endpoint.ts'
import { CODES } from '../../lib/errors.ts'
import type { ApiOptions } from '../app.ts'
import type { AgentTunnelInfo } from './sessions.ts'
import { ApiError } from '../errors.ts'
import { isApiOwned, isOwnedId, newEndpointId, ownedFileName, readOwnedFile, removeFile, renderOwnedFile, writeAtomically, type OwnedDecl } from '../owned-files.ts'
import { endpointResource, type SourceCache } from '../resource.ts'

const Binding = v.picklist(['public', 'internal'])

/** Fields shared by create and update; names and types follow ngrok's EndpointCreate/EndpointUpdate. */
const fields = {
  /** Endpoint URL, same rules as in policies files. */
  url: v.string(),
  /** Only `cloud` endpoints can be created or updated. */
  type: v.literal('cloud'),
  /** Exactly one binding. */
  bindings: v.pipe(v.array(Binding), v.length(1, 'must hold exactly one binding')),
  /** Traffic policy as YAML/JSON text (ngrok) or as an object. */
  traffic_policy: v.union([v.string(), v.record(v.string(), v.unknown())]),
  description: v.string(),
  metadata: v.string(),
  pooling_enabled: v.boolean(),
}

export const EndpointCreateSpec = v.strictObject({
  ...fields,
  type: v.optional(fields.type),
  bindings: v.optional(fields.bindings),
  traffic_policy: v.optional(fields.traffic_policy),
  description: v.optional(fields.description),
  metadata: v.optional(fields.metadata),
  pooling_enabled: v.optional(fields.pooling_enabled),
})

export const EndpointUpdateSpec = v.strictObject({
  url: v.optional(fields.url),
  type: v.optional(fields.type),
  bindings: v.optional(fields.bindings),
  traffic_policy: v.optional(fields.traffic_policy),
  description: v.optional(fields.description),
  metadata: v.optional(fields.metadata),
  pooling_enabled: v.optional(fields.pooling_enabled),
})

type EndpointFields = v.InferOutput<typeof EndpointUpdateSpec>

const LIST_PARAMS = new Set(['url', 'binding', 'type', 'limit', 'before_id'])
const MAX_LIMIT = 100

function badRequest(msg: string, field?: string): ApiError {
  return new ApiError(CODES.API_BAD_REQUEST, 400, msg, field ? { field } : undefined)
}

async function jsonBody<S extends v.GenericSchema>(c: Context, schema: S): Promise<v.InferOutput<S>> {
  let raw: unknown
  try {
    raw = JSON.parse(await c.req.text())
  } catch (err) {
    throw badRequest(`The request body is not valid JSON: ${(err as Error).message}`)
  }
  const res = v.safeParse(schema, raw)
  if (!res.success) {
    const issue = res.issues[0]!
    const field = issue.path?.[0]?.key
    throw badRequest(describeIssue(issue), typeof field === 'string' ? field : undefined)
  }
  return res.output
}

/** Applies request fields to a policies-file declaration (API `bindings` ↔ file `binding`). */
function applyFields(base: OwnedDecl, body: EndpointFields): OwnedDecl {
  const decl: OwnedDecl = { ...base }
  if (body.url !== undefined) decl.url = body.url
  if (body.bindings !== undefined) decl.binding = body.bindings[0]!
  if (body.pooling_enabled !== undefined) decl.pooling_enabled = body.pooling_enabled
  // An empty string clears a text field, as in ngrok's update.
  for (const key of ['description', 'metadata', 'traffic_policy'] as const) {
    const value = body[key]
    if (value === undefined) continue
    if (value === '') delete decl[key]
    else (decl as Record<string, unknown>)[key] = value
  }
  return decl
}

/** File keys → API field names, for messages. */
const FIELD_OF: Record<string, string> = { binding: 'bindings' }

/** The top-level key each line of a rendered file belongs to (keys start in column 1; values are indented). */
function fieldAt(text: string, line: number): string | undefined {
  let field: string | undefined
  text.split('\n').forEach((l, i) => {
    if (i + 1 > line) return
    const m = /^([A-Za-z_]+):/.exec(l)
    if (m) field = m[1]
  })
  return field === undefined ? undefined : (FIELD_OF[field] ?? field)
}

/**
 * Runs the policies-file loader on the candidate file text, exactly as hot reload would, and turns
 * its issues into a 400 that names the request field.
 */
function validateCandidate(options: ApiOptions, name: string, text: string): void {
  const result = loadPolicyFile(options.policiesDir, name, options.loadOptions, { text, hash: 'candidate' })
  if (!result.issues.length) return
  const issues = result.issues.map((i) => {
    const field = fieldAt(text, i.line)
    const message = field && !i.message.startsWith(`${field}:`) && !i.message.startsWith(`${field}.`) ? `${field}: ${i.message}` : i.message
    return { field: field ?? null, code: i.code, message }
  })
  throw new ApiError(CODES.API_ENDPOINT_INVALID, 400, issues.map((i) => `${i.message} [${i.code}]`).join('; '), { issues })
}

function findEndpoint(options: ApiOptions, id: string): Endpoint | undefined {
  return options.store.current.endpoints.find((e) => e.id === id)
}

function notFound(id: string): ApiError {
  return new ApiError(CODES.API_NOT_FOUND, 404, `No endpoint with id "${id}"`)
}

function readOnly(ep: Endpoint): ApiError {
  const why =
    ep.kind === 'agent'
      ? `it was created by an agent (${ep.source}); stop the agent's endpoint instead`
      : `it is declared in the hand-written policies file "${ep.source}" (line ${ep.position.line}); edit that file instead`
  return new ApiError(CODES.API_ENDPOINT_READ_ONLY, 409, `Endpoint ${ep.id} (${ep.urlText}) cannot be changed through the API: ${why}`, { source: ep.source })
}

/**
 * Writes (or removes, with `text` null) an API-owned file, reloads the edge synchronously and checks
 * that the endpoint serves. If it does not (a URL conflict), the previous file content is restored.
 */
function commit(options: ApiOptions, id: string, text: string | null, previous: string | undefined): Endpoint | undefined {
  if (!isOwnedId(id)) throw new TypeError(`not an API endpoint id: ${id}`)
  const name = ownedFileName(id)
  if (text === null) removeFile(options.policiesDir, name)
  else writeAtomically(options.policiesDir, name, text)
  options.reload('api')
  if (text === null) return undefined
  const ep = findEndpoint(options, id)
  if (ep) return ep
  const status = options.store.status
  const rejected = status.endpoints.find((e) => e.id === id && e.status === 'error')
  const fileIssues = status.files.find((f) => f.file === name)?.issues ?? []
  // Put things back as they were before answering.
  if (previous === undefined) removeFile(options.policiesDir, name)
  else writeAtomically(options.policiesDir, name, previous)
  options.reload('api')
  if (rejected) throw new ApiError(CODES.API_URL_CONFLICT, 409, rejected.errors.join('; '), { errors: rejected.errors })
  throw new ApiError(CODES.API_ENDPOINT_INVALID, 400, fileIssues.map((i) => `${i.message} [${i.code}]`).join('; ') || `Endpoint ${id} did not load`, { issues: fileIssues })
}

/** The parsed declaration in an API-owned file (empty when it is missing or unreadable). */
function ownedDecl(text: string | undefined): OwnedDecl {
  if (text === undefined) return {}
  const parsed = parseSource(text)
  const value = 'doc' in parsed ? parsed.doc.value : undefined
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? { ...(value as OwnedDecl) } : {}
}

/** `/endpoints`: list, get, create, update and delete cloud endpoints; agent endpoints are listed read-only. */
export function endpointRoutes(options: ApiOptions & { tunnels: () => readonly AgentTunnelInfo[] }): Hono {
  const app = new Hono()
  // Agent endpoints name the session serving them now (it changes when the agent reconnects).
  const sessionOf = (ep: Endpoint) => (ep.kind === 'agent' ? options.tunnels().find((t) => `ep_${t.id}` === ep.id && t.account === ep.account) : undefined)
  const show = (c: Context, ep: Endpoint, cache: SourceCache = new Map()) =>
    endpointResource(ep, { origin: new URL(c.req.url).origin, policiesDir: options.policiesDir, cache, publicPorts: options.loadOptions.defaultPorts, session: sessionOf(ep) })

  app.get('/', (c) => {
    const query = c.req.query()
    for (const key of Object.keys(query)) if (!LIST_PARAMS.has(key)) throw badRequest(`Unknown query parameter "${key}" (supported: ${[...LIST_PARAMS].join(', ')})`, key)
    let limit = MAX_LIMIT
    if (query.limit !== undefined) {
      limit = Number(query.limit)
      if (!/^\d+$/.test(query.limit) || limit < 1 || limit > MAX_LIMIT) throw badRequest(`limit: must be an integer from 1 to ${MAX_LIMIT}`, 'limit')
    }
    if (query.type !== undefined && query.type !== 'cloud' && query.type !== 'agent') throw badRequest('type: must be "cloud" or "agent"', 'type')
    if (query.binding !== undefined && query.binding !== 'public' && query.binding !== 'internal') throw badRequest('binding: must be "public" or "internal"', 'binding')
    // The URL as shown (public port named) finds the endpoint as well as its canonical form.
    const canonical = (u: EndpointUrl) => formatEndpointUrl(withoutPublicPort(u, options.loadOptions.defaultPorts))
    let url: string | undefined
    if (query.url !== undefined) {
      try {
        url = canonical(parseEndpointUrl(query.url))
      } catch (err) {
        throw badRequest(`url: ${(err as Error).message}`, 'url')
      }
    }
    const matching = options.store.current.endpoints
      .filter((e) => (url === undefined || canonical(e.url) === url) && (query.binding === undefined || e.url.binding === query.binding) && (query.type === undefined || e.kind === query.type))
      .filter((e) => query.before_id === undefined || e.id < query.before_id)
      // ngrok pages from the newest id down; API ids are time-ordered, so that is creation order.
      .sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
    const page = matching.slice(0, limit)
    const cache: SourceCache = new Map()
    const self = new URL(c.req.url)
    let next: string | null = null
    if (matching.length > limit) {
      const nextUrl = new URL(self)
      nextUrl.searchParams.set('before_id', page[page.length - 1]!.id)
      nextUrl.searchParams.set('limit', String(limit))
      next = nextUrl.toString()
    }
    return c.json({ endpoints: page.map((e) => show(c, e, cache)), uri: self.toString(), next_page_uri: next })
  })

  app.post('/', async (c) => {
    const body = await jsonBody(c, EndpointCreateSpec)
    const id = newEndpointId()
    const text = renderOwnedFile(id, applyFields({}, body))
    validateCandidate(options, ownedFileName(id), text)
    const ep = commit(options, id, text, undefined)!
    return c.json(show(c, ep), 201)
  })

  app.get('/:id', (c) => {
    const id = c.req.param('id')
    const ep = findEndpoint(options, id)
    if (!ep) throw notFound(id)
    return c.json(show(c, ep))
  })

  app.patch('/:id', async (c) => {
    const id = c.req.param('id')
    const ep = findEndpoint(options, id)
    if (ep && !isApiOwned(ep)) throw readOnly(ep)
    // An API file that does not serve right now (e.g. broken by a hand edit) can still be fixed.
    const previous = readOwnedFile(options.policiesDir, id)
    if (!ep && previous === undefined) throw notFound(id)
    const body = await jsonBody(c, EndpointUpdateSpec)
    const text = renderOwnedFile(id, applyFields(ownedDecl(previous), body))
    validateCandidate(options, ownedFileName(id), text)
    return c.json(show(c, commit(options, id, text, previous)!))
  })

  app.delete('/:id', (c) => {
    const id = c.req.param('id')
    const ep = findEndpoint(options, id)
    if (ep && !isApiOwned(ep)) throw readOnly(ep)
    const previous = readOwnedFile(options.policiesDir, id)
    if (!ep && previous === undefined) throw notFound(id)
    commit(options, id, null, previous)
    return c.body(null, 204)
  })

  const notAllowed = (allow: string) => (c: Context) => {
    c.header('allow', allow)
    throw new ApiError(CODES.API_METHOD_NOT_ALLOWED, 405, `${c.req.method} is not allowed here (allowed: ${allow})`)
  }
  app.all('/', notAllowed('GET, POST'))
  app.all('/:id', notAllowed('GET, PATCH, DELETE'))
  return app
}
