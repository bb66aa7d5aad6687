/**
 * Stable error codes. Numbers follow ngrok's where the meaning is the same (3200, 3004, 6029, 9026…);
 * the rest use warren's ranges: 1xxx config, 2xxx policy, 3xxx listen/proxy, 4xxx tunnel, 5xxx acme, 6xxx api,
 * 7xxx cluster (`--workers`, several nodes).
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
  /** A listener of `warren serve` could not open its address (in use, no permission, not this host's). */
  LISTEN_FAILED: 'ERR_WARREN_1010',
  /** The command line is wrong: an unknown flag, a flag without its value. */
  USAGE: 'ERR_WARREN_1011',
  /** The policies directory to check does not exist (or is not a directory). */
  POLICIES_DIR_MISSING: 'ERR_WARREN_1012',
  /** A YAML document's aliases expand too far (an alias bomb, "billion laughs"); refused before it is expanded in full. */
  YAML_ALIAS_LIMIT: 'ERR_WARREN_1007',
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
  /** The request line names an HTTP version other than 1.0 or 1.1 (on the HTTP/1 engine). */
  HTTP_VERSION_NOT_SUPPORTED: 'ERR_WARREN_3030',
  /** The method is one the edge does not serve (CONNECT: warren is not a forward proxy). */
  METHOD_NOT_SUPPORTED: 'ERR_WARREN_3031',
  /** Transfer-Encoding names a coding other than plain `chunked`. */
  TRANSFER_CODING_NOT_SUPPORTED: 'ERR_WARREN_3032',
  /** The client did not send its request head, or its body, within the read timeout. */
  REQUEST_TIMEOUT: 'ERR_WARREN_3033',
  /** The request body is larger than `http.max_body_bytes`. */
  BODY_TOO_LARGE: 'ERR_WARREN_3034',
  /** A TLS connection sent no SNI, so no endpoint can be chosen. */
  TLS_NO_SNI: 'ERR_WARREN_3008',
  /** No ClientHello arrived within the ClientHello timeout (3 s). */
  TLS_HELLO_TIMEOUT: 'ERR_WARREN_3009',
  /** The first bytes on the TLS port were not a valid ClientHello. */
  TLS_BAD_HELLO: 'ERR_WARREN_3010',
  /** No certificate could be found or issued for the requested name. */
  TLS_NO_CERTIFICATE: 'ERR_WARREN_3011',
  /** The request's Host names another endpoint than the one its TLS connection was made for (SNI); answered 421. */
  MISDIRECTED_REQUEST: 'ERR_WARREN_3012',
  /** Too many connections on the TLS port have not sent their ClientHello yet (from this source, or in all); refused. */
  TLS_PENDING_LIMIT: 'ERR_WARREN_3016',
  /** Too many connections on the HTTP port have not sent a whole request head yet (from this source, or in all); refused. */
  HTTP_PENDING_LIMIT: 'ERR_WARREN_3017',
  /** An agent connection sent more than it may before authenticating (16 KiB, or a larger frame); cut. */
  AGENT_PREAUTH_LIMIT: 'ERR_WARREN_4008',
  /** An agent connection did not finish its TLS handshake and Auth within `agents.auth_timeout`; cut. */
  AGENT_AUTH_TIMEOUT: 'ERR_WARREN_4009',
  /** Too many agent connections have not authenticated yet (from this source, or in all); refused. */
  AGENT_PENDING_LIMIT: 'ERR_WARREN_4010',
  /** An agent kept sending but stopped reading until the edge had queued 16 MiB for it; session cut. */
  AGENT_QUEUE_LIMIT: 'ERR_WARREN_4011',
  /** An ACME order failed (network, challenge, CA problem); retried with backoff, the old certificate keeps serving. */
  ACME_ORDER_FAILED: 'ERR_WARREN_5001',
  /** The ACME CA rate-limited us; the retry waits at least its Retry-After. */
  ACME_RATE_LIMITED: 'ERR_WARREN_5002',
  /** certs/acme/ could not be read or written. */
  ACME_STORE_FAILED: 'ERR_WARREN_5003',
  /** On-demand orders for new names are over their rate; the handshake was refused. */
  ACME_ON_DEMAND_LIMITED: 'ERR_WARREN_5004',
  /** The policy ran to its end without a terminating action on a cloud endpoint (ngrok 6029). */
  POLICY_NOT_TERMINATED: 'ERR_WARREN_6029',
  /** (log) SIGTERM: requests or connections still in flight when `shutdown.drain` ran out (or at a second signal) were cut. */
  SHUTDOWN_DRAIN_CUT: 'ERR_WARREN_3020',
  /** Something unexpected failed inside the edge. */
  INTERNAL: 'ERR_WARREN_3999',
  /** The `deny` action refused the request. */
  POLICY_DENIED: 'ERR_WARREN_2101',
  /** `restrict-ips` refused the client's address. */
  IP_RESTRICTED: 'ERR_WARREN_2102',
  /** `basic-auth` found no valid credentials. */
  UNAUTHORIZED: 'ERR_WARREN_2103',
  /** `rate-limit`: the request's bucket is over capacity. */
  RATE_LIMITED: 'ERR_WARREN_2104',
  /** `circuit-breaker` is open after too many upstream errors. */
  CIRCUIT_OPEN: 'ERR_WARREN_2105',
  /** forward-internal/http-request would loop back to an endpoint already in the chain, or go too deep. */
  FORWARD_LOOP: 'ERR_WARREN_2106',
  /** The `http-request` side request failed and `on_error` is `halt`. */
  SIDE_REQUEST_FAILED: 'ERR_WARREN_2107',
  /**
   * (log) A message of a `text/event-stream` answer grew past 1 MiB (1,048,576 characters) without
   * its blank line while on_event_stream_message was rewriting the stream: the edge cut the stream.
   */
  EVENT_STREAM_MESSAGE_TOO_LARGE: 'ERR_WARREN_2120',
  /** (log) on_event_stream_message failed for a message (a `${…}` failed): the edge cut the stream rather than send it unprocessed. */
  EVENT_STREAM_POLICY_FAILED: 'ERR_WARREN_2121',
  /** `verify-webhook`: the delivery's signature is missing or wrong, or its timestamp is outside the tolerance; answered 403. */
  WEBHOOK_UNVERIFIED: 'ERR_WARREN_2130',
  /** `jwt-validation`: no token, or a token that fails its signature, issuer, audience, algorithm or time checks; answered 401. */
  JWT_INVALID: 'ERR_WARREN_2131',
  /** `jwt-validation`: the JWKS could not be fetched or holds no usable key, so no token can be checked; answered 401. */
  JWKS_UNAVAILABLE: 'ERR_WARREN_2132',
  /** `owasp-crs-request`/`-response`: libmodsecurity or the OWASP Core Rule Set is not installed (or fails to load); the policy is refused. */
  CRS_UNAVAILABLE: 'ERR_WARREN_2133',
  /** `owasp-crs-request`/`-response`: the Core Rule Set's anomaly score reached its threshold; answered 403. */
  CRS_BLOCKED: 'ERR_WARREN_2134',
  /** `oauth` without `client_id`/`client_secret`: a self-hosted edge has no shared OAuth app to fall back on. */
  OAUTH_NO_CLIENT: 'ERR_WARREN_2160',
  /** oauth/openid-connect: the identity provider cannot be reached, or its discovery document is invalid (502). */
  IDENTITY_PROVIDER_UNAVAILABLE: 'ERR_WARREN_2161',
  /** oauth/openid-connect: a callback without a valid login in progress (no or expired flow cookie, state mismatch) (400). */
  IDENTITY_CALLBACK_INVALID: 'ERR_WARREN_2162',
  /** oauth/openid-connect: the provider refused the login, or its tokens failed validation (issuer, audience, nonce, signature) (401). */
  IDENTITY_LOGIN_FAILED: 'ERR_WARREN_2163',
  /** The identity actions' session key (certs/session.key) cannot be read or created. */
  IDENTITY_SESSION_KEY: 'ERR_WARREN_2164',
  /** An oauth/openid-connect config the edge cannot use (unknown provider, http:// issuer off loopback, bad endpoints). */
  IDENTITY_CONFIG_INVALID: 'ERR_WARREN_2165',
  /** `scope: cluster` where nothing is shared to count in: a worker of `--workers N` (no cluster.redis); the policy is refused. */
  CLUSTER_SCOPE_UNAVAILABLE: 'ERR_WARREN_2170',
  /** The REST API request has no `Authorization: Bearer` key, or the key is not one of `api_keys`. */
  API_UNAUTHORIZED: 'ERR_WARREN_6001',
  /** The REST API refuses everything because warren.yaml configures no `api_keys`. */
  API_NO_KEYS: 'ERR_WARREN_6002',
  /** No such API resource (endpoint id or route). */
  API_NOT_FOUND: 'ERR_WARREN_6003',
  /** The API request is malformed: not JSON, unknown or mistyped field, bad query parameter. */
  API_BAD_REQUEST: 'ERR_WARREN_6004',
  /** The endpoint the API request describes fails the same validation as a policies file. */
  API_ENDPOINT_INVALID: 'ERR_WARREN_6005',
  /** The endpoint is declared in a hand-written policies file or by an agent: the API cannot change it. */
  API_ENDPOINT_READ_ONLY: 'ERR_WARREN_6006',
  /** Another endpoint already serves this URL and binding without pooling. */
  API_URL_CONFLICT: 'ERR_WARREN_6007',
  /** The policies directory cannot be written, so API changes cannot be stored. */
  API_POLICIES_NOT_WRITABLE: 'ERR_WARREN_6008',
  /** The route exists but not with this HTTP method. */
  API_METHOD_NOT_ALLOWED: 'ERR_WARREN_6009',
  /** A policy expression or `${…}` template failed while handling a request (ngrok 3900); answered with 500. */
  POLICY_EVAL_FAILED: 'ERR_WARREN_3900',
  /** The agent refused or failed a command sent through the API (restart), or its session ended first. */
  API_AGENT_COMMAND_FAILED: 'ERR_WARREN_6010',
  /** The agent's inspector refused a replay or clear sent from another origin (a cross-site page in a browser). */
  INSPECTOR_CROSS_ORIGIN: 'ERR_WARREN_6011',
  /** The agent's inspector refused a replay whose body is not declared `Content-Type: application/json`. */
  INSPECTOR_NOT_JSON: 'ERR_WARREN_6012',
  /** The SSH host key in certs/ssh/ cannot be read, parsed or created. */
  SSH_HOST_KEY: 'ERR_WARREN_4030',
  /** An SSH login was refused: the key is in no account's `ssh_keys`, or the password is not an authtoken. */
  SSH_AUTH_FAILED: 'ERR_WARREN_4031',
  /** The SSH command is missing, unknown (not http, tcp or tls) or has invalid flags. */
  SSH_COMMAND_INVALID: 'ERR_WARREN_4032',
  /** The SSH front door cannot do this (https upstreams, file serving, TLS termination in the agent, …); use the agent. */
  SSH_UNSUPPORTED: 'ERR_WARREN_4033',
  /** The `-R` forward does not fit the command (e.g. port 8080 for http: use 0, 80 or 443). */
  SSH_FORWARD_INVALID: 'ERR_WARREN_4034',
  /** `--workers` / `serve.workers` is not a whole number from 1 or `auto`. */
  WORKERS_INVALID: 'ERR_WARREN_7001',
  /** A worker process exited without being asked to; the supervisor restarts it. */
  WORKER_EXITED: 'ERR_WARREN_7004',
  /** A worker lost its supervisor (killed): it drains and exits rather than serve alone. */
  SUPERVISOR_LOST: 'ERR_WARREN_7005',
  /** `cluster.redis` cannot be reached at start (the node does not start without it). */
  CLUSTER_REDIS_UNREACHABLE: 'ERR_WARREN_7020',
  /** (log) Redis went away while the node runs: it serves what it knows and publishes its changes when Redis returns. */
  CLUSTER_REDIS_LOST: 'ERR_WARREN_7022',
  /** Another node holds this non-pooled URL (split brain): this node's agent endpoint for it is stopped. */
  CLUSTER_URL_TAKEN: 'ERR_WARREN_7023',
  /** A node-to-node link connection was refused: it did not show the cluster's secret. */
  CLUSTER_LINK_REFUSED: 'ERR_WARREN_7024',
  /** Another live node renews the lease of this `cluster.node` id: two nodes may not share one. */
  CLUSTER_NODE_ID_IN_USE: 'ERR_WARREN_7026',
  /** (log) A certificate order was postponed: Redis (or the workers' supervisor), which holds the order locks and the shared certificates, did not answer. */
  CLUSTER_ACME_UNREACHABLE: 'ERR_WARREN_7027',
  /** (log) The order lock of a name ran out while this node ordered it: another node may order the same name. */
  CLUSTER_ACME_LOCK_LOST: 'ERR_WARREN_7028',
  /** (log) Another node's order for a name ended without a certificate: this node retries after its backoff. */
  CLUSTER_ACME_PEER_FAILED: 'ERR_WARREN_7029',
  /** (log) Redis did not answer a `scope: cluster` rate-limit decision in time: the node counts locally until it does. */
  CLUSTER_LIMITS_LOCAL: 'ERR_WARREN_7030',
  /**
   * A link connection from a member speaking another version of the link's framing (a node not yet
   * upgraded) was refused: the nodes of one cluster must run versions with the same link.
   */
  CLUSTER_LINK_VERSION: 'ERR_WARREN_7035',
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
