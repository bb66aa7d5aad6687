import type { ObjectSchema } from '@marcbachmann/cel-js'
import type { Phase } from '../types.ts'
import { TEXT_FIELD } from './values.ts'

/*
 * The types of ngrok's policy variables, declared to cel-js so expressions are type-checked at load:
 * `req.url.pth` or `req.headers['x'] == 'v'` (a list compared with a string) fail before any request.
 * context.ts builds values of exactly these shapes. `vars` and `actions` stay dynamic.
 */

const HEADERS = 'map<string, list<string>>'
const TIMESTAMP = 'google.protobuf.Timestamp'

/** A Content-Type: compares as the media type, `.raw` is the header, `.parameters` its parameters. */
const CONTENT_TYPE = { [TEXT_FIELD]: 'string', raw: 'string', parameters: 'map<string, string>' }

export const CONN_SCHEMA = {
  client_ip: 'string',
  client_port: 'int',
  server_ip: 'string',
  server_port: 'int',
  server_region: 'string',
  ts: { start: TIMESTAMP },
  geo: {
    city: 'string',
    country: 'string',
    country_code: 'string',
    latitude: 'string',
    longitude: 'string',
    radius: 'string',
    subdivision: 'string',
  },
  tls: {
    cipher_suite: 'string',
    ja4_fingerprint: 'string',
    negotiated_alpn: 'string',
    session_resumed: 'bool',
    sni: 'string',
    version: 'string',
  },
}

export const ENDPOINT_SCHEMA = {
  id: 'string',
  url: 'string',
  addr: 'string',
  host: 'string',
  port: 'int',
  protocol: 'string',
  binding: 'string',
}

export const REQ_SCHEMA = {
  method: 'string',
  host: 'string',
  version: 'string',
  location: 'string',
  url: {
    [TEXT_FIELD]: 'string',
    authority: 'string',
    host: 'string',
    path: 'string',
    port: 'int',
    query: 'string',
    query_params: HEADERS,
    raw: 'string',
    raw_path: 'string',
    scheme: 'string',
    uri: 'string',
    user_password: 'string',
  },
  headers: HEADERS,
  trailers: HEADERS,
  cookies: 'map<string, list<Cookie>>',
  content_length: 'int',
  content_encoding: 'list<string>',
  content_type: CONTENT_TYPE,
  user_agent: {
    [TEXT_FIELD]: 'string',
    name: 'string',
    version: 'string',
    os: 'string',
    os_version: 'string',
    device: 'string',
    url: 'string',
    is_mobile: 'bool',
    is_tablet: 'bool',
    is_desktop: 'bool',
    is_bot: 'bool',
  },
  ts: { header_received: TIMESTAMP },
}

export const RES_SCHEMA = {
  status_code: 'int',
  headers: HEADERS,
  trailers: HEADERS,
  cookies: 'map<string, list<Cookie>>',
  content_length: 'int',
  content_encoding: 'list<string>',
  content_type: CONTENT_TYPE,
  location: 'string',
}

export const TIME_SCHEMA = { now: 'string' }

/** Field types of the `Cookie` values in `req.cookies`/`res.cookies` and of getReqCookie/getResCookie. */
export const COOKIE_FIELDS = {
  name: 'string',
  value: 'string',
  path: 'string',
  domain: 'string',
  expires: TIMESTAMP,
  max_age: 'google.protobuf.Duration',
  secure: 'bool',
  http_only: 'bool',
  same_site: 'string',
  unparsed_attributes: 'map<string, string>',
}

/** ngrok's variables that are a string and also have fields: used bare, they read `TEXT_FIELD`. */
export const TEXT_WITH_FIELDS: ReadonlySet<string> = new Set(['req.url', 'req.content_type', 'req.user_agent', 'res.content_type'])

export type VariableName = 'conn' | 'endpoint' | 'req' | 'res' | 'time' | 'vars' | 'actions'

/**
 * Which variables each phase can read (ngrok: `req` from on_http_request on, `res` once there is an
 * answer). ngrok documents no variables of an event-stream message, so that phase has the response's.
 */
export const PHASE_VARIABLES: Readonly<Record<Phase | 'any', readonly VariableName[]>> = {
  on_tcp_connect: ['conn', 'endpoint', 'time', 'vars', 'actions'],
  on_http_request: ['conn', 'endpoint', 'req', 'time', 'vars', 'actions'],
  on_http_response: ['conn', 'endpoint', 'req', 'res', 'time', 'vars', 'actions'],
  on_event_stream_message: ['conn', 'endpoint', 'req', 'res', 'time', 'vars', 'actions'],
  any: ['conn', 'endpoint', 'req', 'res', 'time', 'vars', 'actions'],
}

export const SCHEMAS: Readonly<Record<Exclude<VariableName, 'vars' | 'actions'>, ObjectSchema>> = {
  conn: CONN_SCHEMA,
  endpoint: ENDPOINT_SCHEMA,
  req: REQ_SCHEMA,
  res: RES_SCHEMA,
  time: TIME_SCHEMA,
}
