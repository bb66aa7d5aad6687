import * as v from 'valibot'

/** A cloud endpoint declared in a policies file. */
export const EndpointSpec = v.strictObject({
  /** Endpoint URL: `http://`, `https://`, `tcp://` or `tls://`; `*.` wildcards allowed; `.internal` hosts are internal. */
  url: v.string(),
  /** Who can reach it: `public` (from the listeners) or `internal` (only via forward-internal). Inferred from the URL. */
  binding: v.optional(v.picklist(['public', 'internal'])),
  /** Lets several endpoints share this URL and binding; traffic is balanced across them. */
  pooling_enabled: v.optional(v.boolean(), false),
  /** Free text shown in the API. */
  description: v.optional(v.string()),
  /** Free-form metadata (a string or a map), shown in the API and events. */
  metadata: v.optional(v.union([v.string(), v.record(v.string(), v.unknown())])),
  /** Traffic policy in ngrok's format, as a map or as a YAML/JSON string. */
  traffic_policy: v.optional(v.union([v.string(), v.record(v.string(), v.unknown())])),
  /** Path to a YAML/JSON traffic policy file, relative to this file. */
  traffic_policy_file: v.optional(v.string()),
  /** Account namespace for this endpoint (overrides the file's `account`). */
  account: v.optional(v.string()),
})

/** A policies file: a list of endpoints (with a default account) or one endpoint at the top level. */
export const PolicyFileSpec = v.strictObject({
  /** Account namespace for every endpoint in this file. */
  account: v.optional(v.string()),
  /** Endpoints declared by this file. */
  endpoints: v.array(EndpointSpec),
})

export type EndpointDecl = v.InferOutput<typeof EndpointSpec>
