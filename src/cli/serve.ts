import { mkdirSync, readFileSync } from 'node:fs'
import { availableParallelism, hostname } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { startApi } from '../api/app.ts'
import type { LoadOptions } from '../config/load.ts'
import { formatIssue } from '../config/document.ts'
import { PolicyDirectory } from '../config/policies.ts'
import { loadServerConfig, splitAddress, type ResolvedConfig } from '../config/server.ts'
import { publicEndpointUrl } from '../config/url.ts'
import { watchDirectory } from '../config/watch.ts'
import { EndpointStore } from '../endpoints/store.ts'
import { configureLogging, log, type Level } from '../lib/log.ts'
import { shutdown } from '../lib/shutdown.ts'
import { listenHttp } from '../listeners/http.ts'
import { TcpListeners } from '../listeners/tcp.ts'
import { TlsFront } from '../listeners/tls.ts'
import { listenAgents } from '../listeners/agent.ts'
import type { SshListener } from '../listeners/ssh.ts'
import { listenFailure, openListener } from '../listeners/listen-error.ts'
import { makeAccount } from '../tunnel/accounts.ts'
import { AgentRegistry } from '../tunnel/registry.ts'
import { CertStore } from '../certs/index.ts'
import { followAgentCertificate } from '../listeners/agent-port.ts'
import { reloadEvent } from '../events/reload.ts'
import { setEventOrigin, type EventSink } from '../events/types.ts'
import { edgeMetrics } from '../metrics/edge.ts'
import { PoolRetryStats } from '../proxy/pool-retry.ts'
import { RelayStats } from '../proxy/relay-route.ts'
import { loadSessionKey } from '../policy/identity/session-key.ts'
import { startEvents } from './events.ts'
import { connectWorker, joinWorkers, type Worker } from '../cluster/worker.ts'
import { localAcmeShare } from '../cluster/acme-hub.ts'
import type { ClusterMember } from '../cluster/member.ts'
import type { EndpointClaim } from '../cluster/registry.ts'
import { connectNode, joinNodes, type ClusterConfig } from '../cluster/node.ts'
import { shareApiEndpoints } from '../cluster/api-endpoints.ts'
import { ACME_LOCK_LEASES, redisAcmeShare } from '../cluster/acme-share.ts'
import { RedisLimits } from '../cluster/shared-limits.ts'
import { ClusterEvents } from '../cluster/event-relay.ts'
import type { ClusterScope } from '../policy/types.ts'
import { CLUSTER_DIR_ENV, COOKIE_SECRET_FILE, superviseWorkers, WORKER_ENV } from '../cluster/supervisor.ts'
import { CODES, WarrenError } from '../lib/errors.ts'
import { VERSION } from './version.ts'

export const SERVE_OPTIONS = {
  config: { type: 'string' },
  policies: { type: 'string' },
  certs: { type: 'string' },
  http: { type: 'string' },
  https: { type: 'string' },
  agent: { type: 'string' },
  api: { type: 'string' },
  ssh: { type: 'string' },
  domain: { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  'no-request-log': { type: 'boolean' },
  workers: { type: 'string' },
} as const

/** `--workers` / `serve.workers`: a whole number from 1, or `auto` (one per CPU). */
export function workerCount(value: string | number): number {
  if (value === 'auto') return availableParallelism()
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : NaN
  if (!Number.isInteger(n) || n < 1) throw new WarrenError(CODES.WORKERS_INVALID, `--workers must be a whole number from 1 or "auto", not "${value}"`)
  return n
}

/** Longest a Bind's answer waits for the other workers to serve the new endpoint (a stalled worker must not hold binds). */
const BIND_SETTLE_MS = 1000

/**
 * A worker of `--workers N` in a cluster joins it as node `<node>.w<n>`, its link on the configured
 * port + n - 1 (the same for `advertise`; port 0 stays any free port).
 */
export function workerNode(cluster: ClusterConfig, n: number): ClusterConfig {
  const shift = (address: string) => {
    const { port } = splitAddress(address)
    return `${address.slice(0, address.lastIndexOf(':'))}:${port === 0 ? 0 : port + n - 1}`
  }
  const link = { listen: shift(cluster.link.listen), ...(cluster.link.advertise ? { advertise: shift(cluster.link.advertise) } : {}) }
  return { ...cluster, node: `${cluster.node ?? hostname()}.w${n}`, link }
}

/** The arguments without `--workers N` / `--workers=N` (what each worker runs with). */
function withoutWorkersFlag(args: string[]): string[] {
  return args.filter((a, i) => a !== '--workers' && !a.startsWith('--workers=') && args[i - 1] !== '--workers')
}

/** How policies files load under this config: default ports for URLs without one, default account; what the edge hands their actions. */
export function loadOptionsFor(config: ResolvedConfig, edge: Pick<LoadOptions, 'sessionKey' | 'clusterScope'> = {}): LoadOptions {
  const httpPort = config.public_ports.http ?? splitAddress(config.listen.http).port
  const httpsPort = config.public_ports.https ?? splitAddress(config.listen.https).port
  return {
    defaultPorts: { http: httpPort, https: httpsPort, tls: httpsPort, tcp: 0 },
    defaultAccount: config.accounts[0]?.name ?? 'default',
    ...edge,
  }
}

/** The policies directory bound to the config. */
export function policyDirectoryFor(config: ResolvedConfig, dir = config.policiesDir, edge: Pick<LoadOptions, 'sessionKey' | 'clusterScope'> = {}): PolicyDirectory {
  return new PolicyDirectory(dir, loadOptionsFor(config, edge))
}

function reloadInto(policies: PolicyDirectory, store: EndpointStore, reason: string, events?: EventSink): void {
  const started = performance.now()
  const result = policies.reload()
  if (result.changed.length === 0 && store.current.version !== 0 && reason === 'watch') return
  store.swap(result.table, result)
  events?.emit(reloadEvent(reason, result))
  const reloadLog = log.child({ component: 'policies' })
  for (const f of result.files) for (const issue of f.issues) reloadLog.error(formatIssue(issue), { code: issue.code, serving_previous: f.servingPrevious })
  for (const r of result.rejected) reloadLog.error(`${r.endpoint.source}:${r.endpoint.position.line}:${r.endpoint.position.col}: ${r.message}`, { code: r.code })
  reloadLog.info('endpoints loaded', {
    reason,
    version: result.table.version,
    endpoints: result.table.endpoints.length,
    changed: result.changed,
    errors: result.files.filter((f) => f.status === 'error').length + result.rejected.length,
    ms: Math.round((performance.now() - started) * 10) / 10,
  })
}

export async function serveCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: SERVE_OPTIONS, strict: true })
  const flags = Object.fromEntries(Object.entries(values).filter(([, v]) => typeof v === 'string'))
  const config = loadServerConfig(flags)
  const format = (values['log-format'] ?? config.log.format) as 'json' | 'text' | undefined
  const workerNumber = process.env[WORKER_ENV]
  configureLogging({ level: (values['log-level'] ?? config.log.level) as Level, ...(format ? { format } : {}), ...(workerNumber ? { fields: { worker: Number(workerNumber) } } : {}) })
  const workers = workerCount(values.workers ?? config.serve.workers)
  if (workers > 1 && !workerNumber) {
    return superviseWorkers({ count: workers, args: withoutWorkersFlag(args), graceMs: config.agents.reconnect_grace * 1000, log })
  }
  /** Set in a worker process of `--workers N`: every listening port is shared with the other workers. */
  const shared = workerNumber ? { reusePort: true } : {}
  const clusterDir = process.env[CLUSTER_DIR_ENV] ?? ''

  // Several nodes: Redis must answer before anything listens (the agents' resume cookies are signed with its shared secret).
  // With --workers N each worker is a node of its own: the cluster's registry, link, ACME and events cover the workers too.
  const cluster = config.cluster && workerNumber ? workerNode(config.cluster, Number(workerNumber)) : config.cluster
  const node = cluster
    ? await connectNode(cluster, { member: cluster.node ?? hostname(), graceMs: config.agents.reconnect_grace * 1000, certsDir: config.certsDir, log: log.child({ component: 'cluster' }) })
    : undefined
  // A worker of `--workers N` talks to its supervisor from the start: the ACME manager shares its state through it.
  const supervisor = workerNumber
    ? await connectWorker({
        number: Number(workerNumber),
        dir: clusterDir,
        lost() {
          log.error('the supervisor is gone; draining', { code: CODES.SUPERVISOR_LOST })
          process.kill(process.pid, 'SIGTERM')
        },
      })
    : undefined
  // rate-limit and circuit-breaker `scope: cluster`: kept in the nodes' Redis; a worker of --workers N has nothing to share it through.
  const limits = node && config.cluster ? new RedisLimits(config.cluster.redis, log.child({ component: 'cluster' })) : undefined
  await limits?.ready()
  const clusterScope: ClusterScope | undefined = limits
    ? { shared: limits }
    : workerNumber
      ? { refused: 'needs cluster.redis: each worker of --workers N would count alone (use scope: endpoint for a limit per worker, or run one process)' }
      : undefined

  // Every event says which member made it: a stream on any member carries them all.
  if (node) setEventOrigin({ node: node.registry.self })
  else if (workerNumber) setEventOrigin({ worker: Number(workerNumber) })
  // Before anything listens: a sink that cannot start (bad filter, unwritable file) is a config error.
  const events = startEvents(config, workerNumber ? { worker: Number(workerNumber) } : {})
  // `/events/stream` on any member streams every member's events (sent only while someone listens).
  const relay = node?.registry ?? supervisor
  const clusterEvents = relay ? new ClusterEvents(events.bus, relay) : undefined
  const poolRetries = new PoolRetryStats()
  // Made before the first reload so it counts it; the gauges read the listeners when scraped.
  const metrics = edgeMetrics({
    bus: events.bus,
    endpoints: () => store.current.endpoints,
    agentSessions: () => [...agents.sessions, ...(ssh?.sessions ?? [])].filter((s) => s.account !== undefined && !s.mux.closed).length,
    activeConnections: () => ({ http: server.pendingRequests, tcp: tcp.activeConnections, tls: tls.activeConnections }),
    certificates: () => certs.all(),
    sinkDrops: () => [...events.sinks.map((s) => ({ name: s.name, dropped: s.dropped() })), ...(clusterEvents ? [{ name: 'cluster', dropped: clusterEvents.counts().dropped }] : [])],
    poolRetries: () => poolRetries.entries(),
    relayedRequests: () => server.relayedRequests,
    tlsConnections: () => tls.accepted,
    ...(limits ? { clusterLocalDecisions: () => limits.local } : {}),
    ...(clusterEvents ? { clusterEvents: () => clusterEvents.counts() } : {}),
  })
  mkdirSync(config.policiesDir, { recursive: true })
  // Before the first load: the oauth/openid-connect actions seal their session cookies with it.
  const sessionKey = node ? node.identityKey : await loadSessionKey(config.certsDir)
  const store = new EndpointStore()
  const edge = { sessionKey, clusterScope }
  const policies = policyDirectoryFor(config, config.policiesDir, edge)
  const tcp = new TcpListeners({ hostname: splitAddress(config.listen.https).hostname, store, idleTimeoutSec: config.tcp.idle_timeout, events: events.bus, ...shared })
  // tcp ports follow the table, whether policies or agents changed it.
  store.onChange((table) => tcp.reconcile(table))
  const reload = (reason: string) => reloadInto(policies, store, reason, events.bus)
  reload('start')
  // Several nodes: endpoints created through any node's API are mirrored into every node's policies/.
  const apiEndpoints = node ? shareApiEndpoints(node.registry, { dir: config.policiesDir, reload, log: log.child({ component: 'cluster' }) }) : undefined

  const lifecycle = new AbortController()
  const accounts = config.accounts.map(makeAccount)
  const https = splitAddress(config.listen.https)
  const certs = new CertStore(config.certsDir, { mode: config.tls.mode, domain: config.domain, signal: lifecycle.signal })
  const agentNames = [...(config.agent_tls.names ?? []), `agent.${config.domain}`]
  // tls.mode acme: certificates for claimed names; HTTP-01 and TLS-ALPN-01 hook into the listeners below.
  // Loaded only in acme mode: acme-client and its HTTP stack cost ~30 MB of memory at rest.
  const { AcmeManager, AcmeStore, resolveAcmeSettings } = config.tls.mode === 'acme' ? await import('../acme/index.ts') : ({} as typeof import('../acme/index.ts'))
  const acme =
    config.tls.mode === 'acme'
      ? new AcmeManager({
          settings: resolveAcmeSettings(config.tls.acme, config.source ? dirname(resolve(config.source)) : process.cwd()),
          store: new AcmeStore(config.certsDir),
          certs,
          endpoints: store,
          accountDomains: () => accounts.flatMap((a) => a.domains),
          httpsPort: config.public_ports.https ?? https.port,
          ownNames: agentNames,
          signal: lifecycle.signal,
          // Several nodes or workers: one account, one order per name under a lock, every one serves it.
          ...(node ? { share: redisAcmeShare(node.registry, { lockMs: ACME_LOCK_LEASES * node.config.lease * 1000, log: log.child({ component: 'acme' }) }) } : {}),
          ...(supervisor && !node ? { share: localAcmeShare(supervisor) } : {}),
        })
      : undefined
  const http = splitAddress(config.listen.http)
  /** What the plaintext listener and the HTTPS servers behind the TLS front share. */
  const httpDataPath = {
    idleTimeoutSec: config.http.idle_timeout,
    readTimeoutSec: config.http.read_timeout,
    maxBodyBytes: config.http.max_body_bytes,
    maxHeaderBytes: config.http.max_header_bytes,
    upstreamTimeoutMs: config.http.upstream_timeout * 1000,
    logRequests: config.log.requests && !values['no-request-log'],
    events: events.bus,
    poolRetries,
    relayStats: new RelayStats(),
  }
  const server = await openListener('http', config.listen.http, () =>
    listenHttp({
      store,
      scheme: 'http',
      hostname: http.hostname,
      port: http.port,
      ...shared,
      defaultPort: config.public_ports.http ?? http.port,
      ...httpDataPath,
      pending: { total: config.http.max_pending, perSource: config.http.max_pending_per_ip },
      ...(config.http.redirect_https ? { httpsRedirectPort: config.public_ports.https ?? splitAddress(config.listen.https).port } : {}),
      ...(acme ? { acmeChallenge: acme.http01Answer } : {}),
    }),
  )
  watchDirectory(config.policiesDir, () => reload('watch'), { signal: lifecycle.signal })
  process.on('SIGHUP', () => reload('SIGHUP'))

  await certs.init()
  if (acme) {
    // Stored certificates load before the TLS front subscribes; on-demand orders for handshakes after.
    certs.setOnDemand(acme.onDemand)
    await acme.start()
  }
  const tls = new TlsFront({
    hostname: https.hostname,
    port: https.port,
    ...shared,
    defaultPort: config.public_ports.https ?? https.port,
    store,
    certs,
    helloTimeoutMs: config.tls.client_hello_timeout * 1000,
    pending: { total: config.tls.max_pending, perSource: config.tls.max_pending_per_ip },
    events: events.bus,
    idleTimeoutSec: config.tcp.idle_timeout,
    http: httpDataPath,
    ...(acme ? { acmeTlsAlpn: acme.tlsAlpnHandler } : {}),
    ...(acme?.tlsAlpnContext ? { acmeTlsAlpnContext: acme.tlsAlpnContext } : {}),
  })
  await openListener('https', config.listen.https, () => tls.start())

  const registry = new AgentRegistry({
    store,
    domain: config.domain,
    defaultPorts: loadOptionsFor(config).defaultPorts,
    graceMs: config.agents.reconnect_grace * 1000,
    waitMs: config.agents.reconnect_wait * 1000,
    log: log.child({ component: 'tunnel' }),
    sessionKey,
    clusterScope,
  })
  const agentAddr = splitAddress(config.listen.agent)
  const startAgents = (tls: { cert: string; key: string }) => {
    try {
      return listenAgents({ hostname: agentAddr.hostname, port: agentAddr.port, ...shared, ...(node ? { cookieSecret: node.cookieSecret } : workerNumber ? { cookieSecret: readFileSync(join(clusterDir, COOKIE_SECRET_FILE)) } : {}), tls, accounts: () => accounts, registry, events: events.bus, authTimeoutSec: config.agents.auth_timeout, pending: { total: config.agents.max_pending, perSource: config.agents.max_pending_per_ip }, ...(supervisor && !node ? { settleBinds: () => supervisor.synced(BIND_SETTLE_MS) } : {}) })
    } catch (err) {
      throw listenFailure(err, 'agent', config.listen.agent)
    }
  }
  // With ACME the agent port's certificate may not exist yet: the port opens once it is issued.
  const agents = acme
    ? followAgentCertificate(certs, agentNames, startAgents, { log: log.child({ component: 'tunnel' }), signal: lifecycle.signal })
    : startAgents(await certs.agentCert([`agent.${config.domain}`, ...(config.agent_tls.names ?? [])]))

  // The SSH front door: the same registry, so SSH endpoints follow the agents' rules.
  const sshAddr = config.listen.ssh ? splitAddress(config.listen.ssh) : undefined
  let ssh: SshListener | undefined
  if (sshAddr) {
    // Loaded only when configured: ssh2 and its crypto cost memory an edge without SSH does not need.
    const [{ listenSsh }, { loadHostKey }] = await Promise.all([import('../listeners/ssh.ts'), import('../tunnel/ssh/host-key.ts')])
    const hostKey = await loadHostKey(config.certsDir)
    ssh = await openListener('ssh', config.listen.ssh!, () => listenSsh({
      hostname: sshAddr.hostname,
      port: sshAddr.port,
      ...shared,
      hostKey: hostKey.privateKey,
      accounts: () => accounts,
      registry,
      domain: config.domain,
      events: events.bus,
    }))
    log.child({ component: 'ssh' }).info('ssh front door listening', { ssh: `${sshAddr.hostname}:${ssh.port}`, host_key: hostKey.fingerprint, created: hostKey.created })
  }

  // A worker of `--workers N` or a node of a cluster: the other members' agent endpoints join the table, this member's agents serve theirs.
  const memberOptions = {
    registry,
    store,
    sessions: () => [...agents.sessions, ...(ssh?.sessions ?? [])],
    events: events.bus,
    defaultPorts: loadOptionsFor(config).defaultPorts,
    sessionKey,
    clusterScope,
    waitMs: config.agents.reconnect_wait * 1000,
    log: log.child({ component: 'cluster' }),
    // Split brain: another member's agent holds the URL; this member's agent is told and its endpoint goes.
    release(claim: EndpointClaim, message: string) {
      const session = [...agents.sessions, ...(ssh?.sessions ?? [])].find((s) => s.id === claim.session && !s.mux.closed)
      if (!session) return
      session.stopTunnel(claim.tunnel, message, 'ERR_NGROK_334')
      registry.unbind(session, { Id: claim.tunnel })
    },
  }
  const worker: Worker | undefined = supervisor && !node ? joinWorkers(supervisor, { ...memberOptions, dir: clusterDir }) : undefined
  const member: ClusterMember | undefined = worker ?? (node && (await joinNodes(node, memberOptions)))

  // The REST API writes policies/api-<id>.yml and reloads synchronously through the same path as the watcher.
  const apiAddr = splitAddress(config.listen.api)
  const api = await openListener('api', config.listen.api, () =>
    startApi({
      hostname: apiAddr.hostname,
      port: apiAddr.port,
      ...shared,
      apiKeys: config.api_keys,
      store,
      policiesDir: config.policiesDir,
      loadOptions: loadOptionsFor(config, edge),
      reload: (reason) => {
        reload(reason)
        apiEndpoints?.changed()
      },
      events: events.bus,
      clusterEvents,
      metrics,
      sessions: () => [...agents.sessions, ...(ssh?.sessions ?? []), ...(member?.sessions() ?? [])],
      tunnels: () => [...registry.list(), ...(member?.tunnels() ?? [])],
      certificates: () => certs.all(),
    }),
  )

  const port = server.port
  // Start-up garbage (parsed config and schemas, the dev CA's key generation) is collected before
  // traffic, so the heap's next collection threshold starts from what is really live.
  Bun.gc(true)
  log.info('warren edge started', { version: VERSION, http: `${http.hostname}:${port}`, https: `${https.hostname}:${tls.port}`, policies: config.policiesDir, config: config.source ?? '(embedded defaults)' })
  const examples = store.current.endpoints.filter((e) => e.url.binding === 'public' && (e.url.scheme === 'http' || e.url.scheme === 'https') && !e.url.wildcard)
  if (examples.length) {
    const publicPorts = loadOptionsFor(config).defaultPorts
    const ca = config.tls.mode === 'dev' ? ` --cacert ${certs.caPath()}` : ''
    log.info('try it', {
      curl: examples.map((e) => `curl${e.url.scheme === 'https' ? ca : ''} ${publicEndpointUrl(e.url, publicPorts)}/`),
    })
  }

  supervisor?.ready()

  const signal = await new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'))
    process.once('SIGTERM', () => resolve('SIGTERM'))
  })
  // A second signal cuts the drain short.
  const hurry = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
  log.info('shutting down', { signal, drain_ms: config.shutdown.drain })
  lifecycle.abort()
  void api.stop()
  // Agents keep their sessions and endpoints while the drain lasts: requests in flight to them finish,
  // and an agent endpoint never answers 404 meanwhile. They are told to go (GOAWAY: they reconnect,
  // elsewhere or to the next edge on this port) only at the end, because a GOAWAY ends every stream of
  // an ngrok agent's session at once.
  const result = await shutdown(
    {
      http: {
        stopAccepting: () => void server.stop(false),
        inFlight: () => server.pendingRequests,
        cut: () => void server.stop(true),
      },
      tls: { stopAccepting: () => tls.stopAccepting(), inFlight: () => tls.activeConnections, cut: () => tls.stop() },
      tcp: { stopAccepting: () => tcp.stopAccepting(), inFlight: () => tcp.activeConnections, cut: () => tcp.stop() },
      ...(member ? { link: member.link } : {}),
      agents: {
        stopAccepting: () => {
          agents.listener.stop(false)
          registry.abandonOffline()
        },
        inFlight: () => 0,
        // GOAWAY ends each session's connection once written; the agents then close their side.
        cut: () => {
          for (const session of agents.sessions) session.close()
          // SSH sessions end here too (their endpoints served the drain); the listener closes with them.
          ssh?.stop()
        },
      },
    },
    { drainMs: config.shutdown.drain, log, hurry },
  )
  // The member leaves first: its agents' endpoints stay reserved in the cluster for them to reconnect elsewhere.
  member?.close()
  limits?.close()
  registry.clear()
  // Sinks get what is queued, for a moment.
  let flushTimer: ReturnType<typeof setTimeout> | undefined
  await Promise.race([events.close(), new Promise<void>((resolve) => (flushTimer = setTimeout(resolve, 1000)))])
  clearTimeout(flushTimer)
  log.info('warren edge stopped', { drained: result.drained, ms: result.ms })
  // Nothing left open by a library (a socket node:tls or Bun did not close) may keep the process past
  // its drain: once the loop has had a moment to empty by itself, exit.
  setTimeout(() => process.exit(0), 500).unref()
  return 0
}
