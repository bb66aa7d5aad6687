import * as v from 'valibot'

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
  /** TCP ports the account may bind, e.g. `20000-20999`. */
  tcp_ports: v.optional(v.string()),
})

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
      acme: v.optional(
        v.strictObject({
          directory: v.optional(v.string()),
          email: v.optional(v.string()),
          challenges: v.optional(v.array(v.picklist(['http-01', 'tls-alpn-01', 'dns-01']))),
          dns_hook: v.optional(v.string()),
        }),
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
      /** Seconds a client connection may sit idle. */
      idle_timeout: v.optional(v.pipe(v.number(), v.minValue(1), v.maxValue(255)), 255),
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
