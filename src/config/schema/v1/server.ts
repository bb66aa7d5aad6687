import * as v from 'valibot'
import { parseDuration } from '../../../lib/duration.ts'
import { parsePortRanges, sshKeyDigest } from '../../../tunnel/accounts.ts'

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/

/** `host:port` to listen on, e.g. `127.0.0.1:8080` or `[::1]:8080`. */
const Address = v.pipe(
  v.string(),
  v.regex(HOST_PORT, 'must be host:port, e.g. 127.0.0.1:8080'),
  v.check((s) => {
    const port = Number(HOST_PORT.exec(s)?.[2])
    return port >= 0 && port <= 65535
  }, 'port must be 0-65535'),
)

const Port = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535))

/** A plain secret or `sha256:<hex>` of it. */
const Secret = v.pipe(v.string(), v.minLength(1))

export const AccountSpec = v.strictObject({
  /** Account name; namespaces internal endpoints. */
  name: v.pipe(v.string(), v.regex(/^[a-z0-9][a-z0-9_-]*$/i, 'letters, digits, - and _ only')),
  /** Authtokens agents of this account present (plain or `sha256:<hex>`). */
  authtokens: v.optional(v.array(Secret), []),
  /** Domains the account owns (exact or `*.` wildcard). */
  domains: v.optional(v.array(v.string()), []),
  /** TCP ports the account may bind, e.g. `20000-20999` or `20000-20099, 30000`. */
  tcp_ports: v.optional(
    v.pipe(
      v.string(),
      v.check((text) => {
        try {
          parsePortRanges(text)
          return true
        } catch {
          return false
        }
      }, 'must be ports or ranges LOW-HIGH (LOW <= HIGH, 1-65535), comma-separated, e.g. "20000-20999, 30000"'),
    ),
  ),
  /**
   * Public keys that log in to the SSH front door as this account: authorized_keys lines
   * (`ssh-ed25519 AAAA… you@host`) or `sha256:<fingerprint>` as `ssh-keygen -lf key.pub` prints it.
   * The account's authtokens also work as the SSH password.
   */
  ssh_keys: v.optional(
    v.array(
      v.pipe(
        v.string(),
        v.check((s) => {
          try {
            return sshKeyDigest(s).length === 32
          } catch {
            return false
          }
        }, 'must be an authorized_keys line ("ssh-ed25519 AAAA… comment") or sha256:<fingerprint>'),
      ),
    ),
    [],
  ),
})

/** Fields every event sink has. */
const sinkCommon = {
  /** Only these event types (default: all). */
  types: v.optional(v.array(v.picklist(['http_request_complete.v0', 'tcp_connection_closed.v0', 'agent_session_start.v0', 'agent_session_stop.v0', 'config_reload.v0']))),
  /** CEL over the event, as ngrok's event filters: `ev` is the event object, `event_type` its type; e.g. `ev.http.response.status_code >= 500`. */
  filter: v.optional(v.pipe(v.string(), v.minLength(1))),
}

/** Writes each event as one JSON line to standard output. */
const StdoutSinkSpec = v.strictObject({ type: v.literal('stdout'), ...sinkCommon })

/** Appends JSON lines to a file, rotating it by size. */
const FileSinkSpec = v.strictObject({
  type: v.literal('file'),
  ...sinkCommon,
  /** The file (relative to warren.yaml); rotated copies are `<path>.1` (newest) … `<path>.<max_files>`. */
  path: v.pipe(v.string(), v.minLength(1)),
  /** Rotate once the file would grow past this many bytes. */
  max_bytes: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1024)), 10 * 1024 * 1024),
  /** Rotated files kept besides the current one (0: the old file is simply replaced). */
  max_files: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(100)), 5),
  /** Bytes of events waiting for the disk; beyond it events are dropped and counted. */
  buffer_bytes: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1024)), 8 * 1024 * 1024),
})

/** POSTs batches of events as a JSON array to a URL, retrying failures with backoff. */
const HttpSinkSpec = v.strictObject({
  type: v.literal('http'),
  ...sinkCommon,
  /** Receiver URL (http or https). */
  url: v.pipe(v.string(), v.url('must be an http(s) URL')),
  /** Extra request headers, e.g. `{authorization: "Bearer …"}`. */
  headers: v.optional(v.record(v.string(), v.string()), {}),
  /** Most events in one POST. */
  batch_size: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(10000)), 100),
  /** Seconds to wait for a batch to fill before sending what there is. */
  flush_interval: v.optional(v.pipe(v.number(), v.minValue(0.01)), 1),
  /** Attempts after the first failed one (network error, 429 or 5xx); then the batch is dropped and counted. */
  max_retries: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(20)), 5),
  /** Seconds one POST may take. */
  timeout: v.optional(v.pipe(v.number(), v.minValue(0.1)), 10),
  /** Most events waiting to be sent (retries included); beyond it events are dropped and counted. */
  buffer: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 10000),
})

export const EventSinkSpec = v.variant('type', [StdoutSinkSpec, FileSinkSpec, HttpSinkSpec])
export type EventSinkConfig = v.InferOutput<typeof EventSinkSpec>

export const ServerConfigSpec = v.strictObject({
  /** Listen addresses. */
  listen: v.optional(
    v.strictObject({
      /** Plaintext HTTP listener. */
      http: v.optional(Address, '127.0.0.1:8080'),
      /** TLS listener (https:// and tls:// endpoints). */
      https: v.optional(Address, '127.0.0.1:8443'),
      /** Where agents connect (TLS). */
      agent: v.optional(Address, '127.0.0.1:4443'),
      /** REST API, metrics and dashboard. */
      api: v.optional(Address, '127.0.0.1:4041'),
      /**
       * SSH front door (`ssh -R 0:localhost:80 v2@host -p 2222 http`): off unless set here or with
       * `warren serve --ssh`; 127.0.0.1:2222 is the usual choice.
       */
      ssh: v.optional(Address),
    }),
    {},
  ),
  /** Base domain: random endpoint names are `<random>.<domain>`. */
  domain: v.optional(v.string(), 'warren.localhost'),
  /** Ports clients see when a NAT or port map sits in front; a Host without a port matches these. */
  public_ports: v.optional(v.strictObject({ http: v.optional(Port), https: v.optional(Port) }), {}),
  /** Policies directory (relative to this file). */
  policies: v.optional(v.string(), './policies'),
  /** Certificates directory (relative to this file). */
  certs: v.optional(v.string(), './certs'),
  /** Certificate mode and TLS port limits. */
  tls: v.optional(
    v.strictObject({
      /** dev: a local CA in certs/ issues for any endpoint name; files: only certs/ files; acme: automatic certificates. */
      mode: v.optional(v.picklist(['dev', 'acme', 'files']), 'dev'),
      /** Seconds to wait for a ClientHello before closing (ngrok: 3). */
      client_hello_timeout: v.optional(v.pipe(v.number(), v.minValue(0.1)), 3),
      /** Most connections waiting for their ClientHello at once; more are refused (ERR_WARREN_3016). */
      max_pending: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 4096),
      /** Most connections waiting for their ClientHello from one IPv4 address or IPv6 /64; more are refused (ERR_WARREN_3016). */
      max_pending_per_ip: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 256),
      /** Automatic certificates (`mode: acme`); see docs/configuration.md "Automatic certificates (ACME)". */
      acme: v.optional(
        v.strictObject({
          /** ACME directory URL of the CA. Default: Let's Encrypt production (staging with `staging: true`). */
          directory: v.optional(v.pipe(v.string(), v.url('must be a URL, e.g. https://acme-v02.api.letsencrypt.org/directory'))),
          /** Use Let's Encrypt's staging directory (untrusted certificates, generous rate limits); not with `directory`. */
          staging: v.optional(v.boolean(), false),
          /** Contact address for the ACME account (expiry notices, policy changes). */
          email: v.optional(v.pipe(v.string(), v.email('must be an email address'))),
          /** External account binding, for CAs that require one (ZeroSSL, Google, Sectigo…). */
          eab: v.optional(
            v.strictObject({
              /** Key identifier the CA gave you. */
              kid: v.pipe(v.string(), v.minLength(1)),
              /** The HMAC key the CA gave you (base64url). */
              hmac_key: v.pipe(v.string(), v.minLength(1)),
            }),
          ),
          /**
           * Challenge types in order of preference. Default: `[http-01, tls-alpn-01]`, plus `dns-01` when
           * `dns_hook` is set. Wildcard names always use dns-01.
           */
          challenges: v.optional(v.pipe(v.array(v.picklist(['http-01', 'tls-alpn-01', 'dns-01'])), v.minLength(1, 'needs at least one challenge type'))),
          /**
           * Command for DNS-01, run as `<dns_hook> present|cleanup <record name> <value>` (record name
           * `_acme-challenge.<domain>`, value the TXT content). It must exit 0 once the record is visible.
           */
          dns_hook: v.optional(v.pipe(v.string(), v.minLength(1))),
          /** PEM file of CA certificates to trust for the directory's HTTPS (private CAs, pebble); the system store otherwise. */
          trusted_roots: v.optional(v.string()),
          /** Seconds a TLS handshake for a claimed name without a certificate waits for its issuance before failing. */
          on_demand_timeout: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(60)), 10),
          /** Seconds before the first status poll of a challenge or order; later polls back off up to 10 s. */
          poll_interval: v.optional(v.pipe(v.number(), v.minValue(0.05)), 1),
          /** Seconds before the first retry after a failed order; each further failure doubles it. */
          retry_min: v.optional(v.pipe(v.number(), v.minValue(0.1)), 60),
          /** Longest wait between retries, in seconds. */
          retry_max: v.optional(v.pipe(v.number(), v.minValue(0.1)), 86400),
        }),
        {},
      ),
    }),
    {},
  ),
  /** Bearer keys for the REST API (plain or `sha256:<hex>`). */
  api_keys: v.optional(v.array(Secret), []),
  /** Certificate for the agent port (names beyond the defaults). */
  agent_tls: v.optional(v.strictObject({ names: v.optional(v.array(v.string())) }), {}),
  /** Accounts: authtokens, owned domains, tcp ports. */
  accounts: v.optional(v.array(AccountSpec), [{ name: 'default', authtokens: [], domains: [] }]),
  /** Limits and timeouts of the HTTP data path. */
  http: v.optional(
    v.strictObject({
      /** Largest request head accepted, in bytes (431 beyond it). */
      max_header_bytes: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1024)), 16384),
      /** Seconds a client connection may sit idle between requests (ngrok: 5 minutes; HTTPS over HTTP/2 stops at 255). */
      idle_timeout: v.optional(v.pipe(v.number(), v.minValue(1)), 300),
      /**
       * Seconds a request head may take from its first byte (408 beyond it), and a request body may
       * go silent (the request fails and the connection closes): slow clients cannot hold connections.
       */
      read_timeout: v.optional(v.pipe(v.number(), v.minValue(0.1)), 30),
      /** Most connections that have not sent a whole request head yet; more are refused (ERR_WARREN_3017). */
      max_pending: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 4096),
      /** Most connections without a whole request head from one IPv4 address or IPv6 /64; more are refused (ERR_WARREN_3017). */
      max_pending_per_ip: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 256),
      /** Seconds to wait for an upstream's response headers (504 beyond it). */
      upstream_timeout: v.optional(v.pipe(v.number(), v.minValue(1)), 300),
      /** Plaintext requests for an https:// endpoint without an http:// twin get a 308 to https. */
      redirect_https: v.optional(v.boolean(), true),
      /** Largest request body, in bytes. */
      max_body_bytes: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0)), 64 * 1024 ** 3),
    }),
    {},
  ),
  /** Agent sessions. */
  agents: v.optional(
    v.strictObject({
      /** Seconds an offline agent's URL stays reserved for it to reconnect. */
      reconnect_grace: v.optional(v.pipe(v.number(), v.minValue(0)), 60),
      /** Seconds a request waits for a reconnecting agent (or a free stream) before failing. */
      reconnect_wait: v.optional(v.pipe(v.number(), v.minValue(0)), 5),
      /** Seconds from an agent's TCP connection to its successful Auth (TLS handshake included); then it is cut (ERR_WARREN_4009). */
      auth_timeout: v.optional(v.pipe(v.number(), v.minValue(0.1)), 10),
      /** Most agent connections that have not authenticated yet; more are refused (ERR_WARREN_4010). */
      max_pending: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 1024),
      /** Most unauthenticated agent connections from one IPv4 address or IPv6 /64; more are refused (ERR_WARREN_4010). */
      max_pending_per_ip: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 64),
    }),
    {},
  ),
  /** How `warren serve` runs. */
  serve: v.optional(
    v.strictObject({
      /**
       * Processes sharing the listening ports (SO_REUSEPORT), each with the endpoint table from
       * policies/; an agent's endpoint answers on every one (docs/cluster.md). `auto`: one per CPU.
       * `--workers` wins over this.
       */
      workers: v.optional(v.union([v.pipe(v.number(), v.integer(), v.minValue(1)), v.literal('auto')]), 1),
    }),
    {},
  ),
  /**
   * Several edge nodes sharing state through Redis (docs/cluster.md, "Several nodes"): which node
   * holds which agent session and URL, and a TLS link between nodes that serves another node's agents.
   */
  cluster: v.optional(
    v.strictObject({
      /** The Redis every node shares: `redis://[:password@]host:port[/db]` (or `rediss://` for TLS). */
      redis: v.pipe(v.string(), v.regex(/^rediss?:\/\/./, 'must be a redis:// or rediss:// URL')),
      /** This node's id, unique in the cluster (its keys in Redis are named after it). Default: the host name. */
      node: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1-64 letters, digits, ".", "_" or "-"'))),
      /** The node-to-node link (TLS with the cluster's own certificate, kept in Redis). */
      link: v.strictObject({
        /** Where this node accepts link connections from the other nodes. */
        listen: Address,
        /** The address the other nodes dial (default: `listen`); set it when `listen` is 0.0.0.0 or behind a NAT. */
        advertise: v.optional(Address),
      }),
      /**
       * Seconds a node's entries live in Redis without renewal (renewed every third of it): a node
       * killed is gone from the cluster within this time. Its agents' URLs stay reserved for
       * `agents.reconnect_grace` after that.
       */
      lease: v.optional(v.pipe(v.number(), v.minValue(1), v.maxValue(60)), 3),
    }),
  ),
  /** SIGTERM and SIGINT. */
  shutdown: v.optional(
    v.strictObject({
      /**
       * How long requests and connections in flight may take to finish once the edge stops accepting
       * (a duration such as `10s` or `1m`, or seconds); then what is left is cut and the edge exits.
       * Loaded as milliseconds.
       */
      drain: v.optional(
        v.pipe(
          v.union([v.pipe(v.number(), v.minValue(0)), v.pipe(v.string(), v.check((s) => parseDuration(s) !== undefined, 'must be a duration such as "10s" or "1m30s"'))]),
          v.transform((d) => (typeof d === 'number' ? d * 1000 : parseDuration(d)!)),
        ),
        '10s',
      ),
    }),
    {},
  ),
  /** Limits of tcp:// and tls:// connections. */
  tcp: v.optional(
    v.strictObject({
      /** Seconds a relayed connection may sit idle in both directions (ngrok: 5 minutes). */
      idle_timeout: v.optional(v.pipe(v.number(), v.minValue(1)), 300),
    }),
    {},
  ),
  /** Events (ngrok's `http_request_complete.v0`, `tcp_connection_closed.v0`, agent sessions, reloads) and where they go. */
  events: v.optional(
    v.strictObject({
      /** Most events waiting for delivery to the sinks; beyond it events are dropped and counted (`warren_events_dropped_total`). */
      queue_size: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 10000),
      /** Where events go; none by default (the API's `/events/stream` works without any). */
      sinks: v.optional(v.array(EventSinkSpec), []),
    }),
    {},
  ),
  /** Logging. */
  log: v.optional(
    v.strictObject({
      level: v.optional(v.picklist(['debug', 'info', 'warn', 'error']), 'info'),
      format: v.optional(v.picklist(['json', 'text'])),
      /** One line per request (endpoint, status, duration). */
      requests: v.optional(v.boolean(), true),
    }),
    {},
  ),
})

export type ServerConfig = v.InferOutput<typeof ServerConfigSpec>
