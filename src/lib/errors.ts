/**
 * Stable error codes. Numbers follow ngrok's where the meaning is the same (3200, 3004, 6029, 9026…);
 * the rest use warren's ranges: 1xxx config, 2xxx policy, 3xxx listen/proxy, 4xxx tunnel, 5xxx acme, 6xxx api.
 * Never reuse or renumber a code: users grep logs and alert on them.
 */
export const CODES = {
  /** The server config file is invalid. */
  CONFIG_INVALID: 'ERR_WARREN_1001',
  /** A policies file is not valid YAML or JSON. */
  POLICY_FILE_SYNTAX: 'ERR_WARREN_1002',
  /** A policies file does not match the schema. */
  POLICY_FILE_SCHEMA: 'ERR_WARREN_1003',
  /** An endpoint URL breaks the URL rules. */
  ENDPOINT_URL_INVALID: 'ERR_WARREN_1004',
  /** Two endpoints claim the same URL and binding without both enabling pooling. */
  ENDPOINT_POOL_CONFLICT: 'ERR_WARREN_1005',
  /** `traffic_policy_file` could not be read. */
  POLICY_FILE_MISSING: 'ERR_WARREN_1006',
  /** An action's config is invalid or the action is used in a phase it does not support. */
  ACTION_INVALID: 'ERR_WARREN_2001',
  /** A CEL expression failed to compile or does not return a bool. */
  EXPRESSION_INVALID: 'ERR_WARREN_2002',
  /** No endpoint serves this host (ngrok 3200: endpoint offline). */
  ENDPOINT_NOT_FOUND: 'ERR_WARREN_3200',
  /** The upstream answered with something that is not valid HTTP (ngrok 3004). */
  UPSTREAM_INVALID_RESPONSE: 'ERR_WARREN_3004',
  /** The upstream refused or reset the connection (ngrok 8012). */
  UPSTREAM_REFUSED: 'ERR_WARREN_8012',
  /** The upstream did not answer in time. */
  UPSTREAM_TIMEOUT: 'ERR_WARREN_3005',
  /** Request headers are larger than the configured limit. */
  HEADERS_TOO_LARGE: 'ERR_WARREN_3006',
  /** The request is malformed (e.g. ambiguous framing); refused before any upstream sees it. */
  BAD_REQUEST: 'ERR_WARREN_3007',
  /** The policy ran to its end without a terminating action on a cloud endpoint (ngrok 6029). */
  POLICY_NOT_TERMINATED: 'ERR_WARREN_6029',
  /** Something unexpected failed inside the edge. */
  INTERNAL: 'ERR_WARREN_3999',
} as const

export type ErrorCode = (typeof CODES)[keyof typeof CODES]

/** A failure with a stable code; `status` is set when it maps onto an HTTP answer. */
export class WarrenError extends Error {
  readonly code: ErrorCode
  readonly status: number | undefined

  constructor(code: ErrorCode, message: string, options?: { status?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'WarrenError'
    this.code = code
    this.status = options?.status
  }
}

/** The response header that marks an edge-made error; upstream responses never carry it. */
export const ERROR_CODE_HEADER = 'warren-error-code'
