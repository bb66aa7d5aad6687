import { toJsonSchema } from '@valibot/to-json-schema'
import { Hono } from 'hono'
import type * as v from 'valibot'
import pkg from '../../../package.json' with { type: 'json' }
import { CODES } from '../../lib/errors.ts'
import { EndpointCreateSpec, EndpointUpdateSpec } from './endpoints.ts'

/** Request schemas come from the valibot schemas the handlers validate with, so they cannot drift. */
function requestSchema(schema: v.GenericSchema): object {
  const { $schema: _, ...rest } = toJsonSchema(schema, { errorMode: 'ignore' }) as Record<string, unknown>
  return rest
}

const API_CODES = Object.values(CODES).filter((c) => c.startsWith('ERR_WARREN_6') && c !== CODES.POLICY_NOT_TERMINATED)

function json(schema: object) {
  return { 'application/json': { schema } }
}
function error(description: string) {
  return { description, content: json({ $ref: '#/components/schemas/Error' }) }
}
function endpoint(description: string) {
  return { description, content: json({ $ref: '#/components/schemas/Endpoint' }) }
}
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' }, description: 'Endpoint id (`ep_…`)' }
const sessionParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' }, description: 'Tunnel session id (the agent\'s client id)' }
const noSession = error('No connected agent with that id (ERR_WARREN_6003)')
const unauthorized = error('No key, a wrong key, or no api_keys configured (ERR_WARREN_6001, ERR_WARREN_6002)')
const readOnly = error('Declared in a hand-written policies file or by an agent (ERR_WARREN_6006), or the URL is taken (ERR_WARREN_6007)')
const notWritable = error('The policies directory cannot be written (ERR_WARREN_6008)')

/** The OpenAPI document of the REST API; `api.test.ts` checks it lists exactly the routes the app serves. */
export const OPENAPI = {
  openapi: '3.1.0',
  info: {
    title: 'warren REST API',
    version: pkg.version,
    description:
      'Manage the cloud endpoints of a warren edge, see its agents, certificates, metrics and live events. Endpoints created here are stored as policies/api-<id>.yml and validated exactly like hand-written policies files. Resource shapes follow the ngrok API where they overlap.',
  },
  security: [{ bearer: [] }],
  paths: {
    '/healthz': { get: { summary: 'Liveness', security: [], responses: { 200: { description: 'The process answers', content: json({ type: 'object', properties: { status: { const: 'ok' } } }) } } } },
    '/readyz': {
      get: {
        summary: 'Readiness: the first load of the policies directory finished',
        security: [],
        responses: {
          200: { description: 'Ready', content: json({ type: 'object', properties: { status: { const: 'ready' }, version: { type: 'integer' } } }) },
          503: { description: 'Still loading', content: json({ type: 'object', properties: { status: { const: 'loading' }, version: { type: 'integer' } } }) },
        },
      },
    },
    '/status': {
      get: {
        summary: 'Load status of every policies file and endpoint',
        responses: { 200: { description: 'Status as of the last reload', content: json({ $ref: '#/components/schemas/Status' }) }, 401: unauthorized },
      },
    },
    '/': { get: { summary: 'Redirects to the dashboard', security: [], responses: { 302: { description: 'To /ui' } } } },
    '/ui': {
      get: {
        summary: 'The read-only dashboard (endpoints, tunnel sessions, certificates, live events); it asks for an API key and reads the API with it',
        security: [],
        responses: { 200: { description: 'One HTML page, embedded in the binary', content: { 'text/html': { schema: { type: 'string' } } } } },
      },
    },
    '/metrics': {
      get: {
        summary: 'Prometheus metrics (text exposition format 0.0.4)',
        responses: { 200: { description: 'Every metric of the edge', content: { 'text/plain': { schema: { type: 'string' } } } }, 401: unauthorized },
      },
    },
    '/events/stream': {
      get: {
        summary: 'Live events as server-sent events: event = event type, id = event id, data = the event as JSON; first a "ready" message, "dropped" when this client read too slowly; in a cluster every member\'s events (with `node` or `worker`), and "cluster" when the others\' stop or start arriving (Redis away or back)',
        parameters: [
          {
            name: 'filter',
            in: 'query',
            schema: { type: 'string' },
            description: 'CEL over `ev` (the event object) and `event_type`, e.g. `ev.http.response.status_code >= 500`',
          },
        ],
        responses: {
          200: { description: 'An endless event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } },
          400: error('The filter does not compile or does not return bool (ERR_WARREN_6004)'),
          401: unauthorized,
        },
      },
    },
    '/certificates': {
      get: {
        summary: 'Certificates the edge holds (names, source, issuer, expiry; never keys)',
        responses: {
          200: {
            description: 'Soonest expiry first',
            content: json({
              type: 'object',
              properties: {
                certificates: {
                  type: 'array',
                  items: {
                    type: 'object',
                    properties: {
                      names: { type: 'array', items: { type: 'string' } },
                      source: { enum: ['file', 'dev', 'acme'] },
                      issuer: { type: 'string' },
                      not_after: { type: 'string', format: 'date-time' },
                      expires_in_seconds: { type: 'integer' },
                      expired: { type: 'boolean' },
                    },
                  },
                },
              },
            }),
          },
          401: unauthorized,
        },
      },
    },
    '/tunnel-sessions': {
      get: {
        summary: 'Agents connected now, oldest first',
        responses: {
          200: {
            description: 'Every tunnel session (one page)',
            content: json({
              type: 'object',
              properties: {
                tunnel_sessions: { type: 'array', items: { $ref: '#/components/schemas/TunnelSession' } },
                uri: { type: 'string' },
                next_page_uri: { type: 'null' },
              },
            }),
          },
          401: unauthorized,
        },
      },
    },
    '/tunnel-sessions/{id}': {
      parameters: [sessionParam],
      get: { summary: 'One tunnel session', responses: { 200: { description: 'The session', content: json({ $ref: '#/components/schemas/TunnelSession' }) }, 401: unauthorized, 404: noSession } },
    },
    '/tunnel-sessions/{id}/stop': {
      parameters: [sessionParam],
      post: {
        summary: 'Ends the session (GOAWAY). Its endpoints stay reserved for agents.reconnect_grace, so a reconnecting agent keeps its URLs',
        responses: { 204: { description: 'The session is closing' }, 401: unauthorized, 404: noSession },
      },
    },
    '/tunnel-sessions/{id}/restart': {
      parameters: [sessionParam],
      post: {
        summary: 'Asks the agent to restart (ngrok\'s Restart command)',
        responses: { 204: { description: 'The agent accepted' }, 401: unauthorized, 404: noSession, 502: error('The agent refused, failed or did not answer in 10 s (ERR_WARREN_6010)') },
      },
    },
    '/openapi.json': { get: { summary: 'This document', responses: { 200: { description: 'OpenAPI 3.1 document', content: json({ type: 'object' }) }, 401: unauthorized } } },
    '/endpoints': {
      get: {
        summary: 'List endpoints, newest id first',
        parameters: [
          { name: 'url', in: 'query', schema: { type: 'string' }, description: 'Only this URL (normalized like policies files: no scheme means https)' },
          { name: 'binding', in: 'query', schema: { enum: ['public', 'internal'] } },
          { name: 'type', in: 'query', schema: { enum: ['cloud', 'agent'] } },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 100 } },
          { name: 'before_id', in: 'query', schema: { type: 'string' }, description: 'Only ids sorting before this one (the last id of the previous page)' },
        ],
        responses: {
          200: {
            description: 'One page of endpoints',
            content: json({
              type: 'object',
              required: ['endpoints', 'uri', 'next_page_uri'],
              properties: {
                endpoints: { type: 'array', items: { $ref: '#/components/schemas/Endpoint' } },
                uri: { type: 'string' },
                next_page_uri: { type: ['string', 'null'], description: 'The next page, or null on the last one' },
              },
            }),
          },
          400: error('Unknown or invalid query parameter (ERR_WARREN_6004)'),
          401: unauthorized,
        },
      },
      post: {
        summary: 'Create a cloud endpoint',
        requestBody: { required: true, content: json(requestSchema(EndpointCreateSpec)) },
        responses: {
          201: endpoint('Created and serving'),
          400: error('Malformed request (ERR_WARREN_6004) or an endpoint that fails policies-file validation (ERR_WARREN_6005; details.issues names each field)'),
          401: unauthorized,
          409: error('The URL is already served without pooling (ERR_WARREN_6007)'),
          503: notWritable,
        },
      },
    },
    '/endpoints/{id}': {
      parameters: [idParam],
      get: { summary: 'Get one endpoint', responses: { 200: endpoint('The endpoint'), 401: unauthorized, 404: error('No such endpoint (ERR_WARREN_6003)') } },
      patch: {
        summary: 'Update a cloud endpoint the API created; omitted fields stay, "" clears a text field',
        requestBody: { required: true, content: json(requestSchema(EndpointUpdateSpec)) },
        responses: {
          200: endpoint('Updated and serving'),
          400: error('Malformed request (ERR_WARREN_6004) or invalid endpoint (ERR_WARREN_6005)'),
          401: unauthorized,
          404: error('No such endpoint (ERR_WARREN_6003)'),
          409: readOnly,
          503: notWritable,
        },
      },
      delete: {
        summary: 'Delete a cloud endpoint the API created',
        responses: { 204: { description: 'Deleted; its URL answers 404 from now on' }, 401: unauthorized, 404: error('No such endpoint (ERR_WARREN_6003)'), 409: readOnly, 503: notWritable },
      },
    },
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'One of api_keys in warren.yaml (stored plain or as sha256:<hex>)' } },
    schemas: {
      Error: {
        type: 'object',
        required: ['error_code', 'status_code', 'msg'],
        properties: {
          error_code: { type: 'string', enum: [...API_CODES, CODES.INTERNAL] },
          status_code: { type: 'integer' },
          msg: { type: 'string' },
          details: { type: 'object' },
        },
      },
      Endpoint: {
        type: 'object',
        required: ['id', 'uri', 'type', 'url', 'scheme', 'host', 'port', 'hostport', 'bindings', 'pooling_enabled', 'account', 'source', 'read_only'],
        properties: {
          id: { type: 'string' },
          uri: { type: 'string', description: 'This resource in the API' },
          type: { enum: ['cloud', 'agent'] },
          url: { type: 'string', description: 'Canonical endpoint URL' },
          scheme: { enum: ['http', 'https', 'tcp', 'tls'] },
          host: { type: 'string' },
          port: { type: 'integer', description: "The URL's port, or the scheme's public port when the URL has none" },
          hostport: { type: 'string' },
          bindings: { type: 'array', items: { enum: ['public', 'internal'] }, minItems: 1, maxItems: 1 },
          pooling_enabled: { type: 'boolean' },
          description: { type: 'string' },
          metadata: { type: 'string', description: 'A map declared in a policies file is shown as JSON text' },
          traffic_policy: { type: 'string', description: 'YAML or JSON text, read from the declaring file' },
          account: { type: 'string', description: 'warren: account namespace' },
          source: { type: 'string', description: 'warren: declaring policies file, relative to the policies directory' },
          read_only: { type: 'boolean', description: 'warren: true for endpoints of hand-written files and agents' },
          tunnel_session: {
            type: ['object', 'null'],
            properties: { id: { type: 'string' }, uri: { type: 'string' } },
            description: 'Agent endpoints only: the session serving it, null while its agent reconnects',
          },
        },
      },
      TunnelSession: {
        type: 'object',
        required: ['id', 'uri', 'agent_version', 'os', 'ip', 'metadata', 'started_at', 'account', 'remote_addr', 'client_info', 'latency_ms', 'endpoints'],
        properties: {
          id: { type: 'string', description: "The agent's client id (kept across reconnects)" },
          uri: { type: 'string' },
          agent_version: { type: 'string' },
          os: { type: 'string' },
          ip: { type: 'string' },
          metadata: { type: 'string' },
          started_at: { type: 'string', format: 'date-time' },
          account: { type: 'string', description: 'warren: the account of its authtoken' },
          remote_addr: { type: 'string', description: 'warren: ip:port of its connection' },
          client_info: { type: 'object', description: 'warren: what the agent sent about itself when authenticating, secrets removed' },
          latency_ms: { type: ['number', 'null'] },
          endpoints: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, uri: { type: 'string' }, url: { type: 'string' } } } },
        },
      },
      Status: {
        type: 'object',
        required: ['ready', 'version', 'serving', 'files', 'endpoints'],
        properties: {
          ready: { type: 'boolean' },
          version: { type: 'integer', description: 'Endpoint table version; 0 before the first load' },
          serving: { type: 'integer', description: 'Endpoints in the table' },
          files: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                file: { type: 'string' },
                status: { enum: ['ok', 'error'] },
                issues: { type: 'array', items: { type: 'object', properties: { file: { type: 'string' }, line: { type: 'integer' }, col: { type: 'integer' }, code: { type: 'string' }, message: { type: 'string' } } } },
                servingPrevious: { type: 'boolean', description: 'Broken now, but its last good endpoints keep serving' },
              },
            },
          },
          endpoints: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                id: { type: 'string' },
                url: { type: 'string' },
                binding: { type: 'string' },
                account: { type: 'string' },
                source: { type: 'string' },
                status: { enum: ['enabled', 'error'] },
                errors: { type: 'array', items: { type: 'string' } },
              },
            },
          },
        },
      },
    },
  },
} as const

export function openapiRoutes(): Hono {
  const app = new Hono()
  app.get('/openapi.json', (c) => c.json(OPENAPI))
  return app
}
