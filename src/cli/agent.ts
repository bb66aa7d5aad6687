import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { parseDocument } from 'yaml'
import { TunnelError } from '../agent/client.ts'
import { defaultConfigPath, endpointFromEntry, loadAgentConfig, selectEndpoints } from '../agent/config.ts'
import { AGENT_FLAGS, ENDPOINT_FLAGS, endpointsFromFlags, normalizeArgs, readCa, resolveSettings, type EndpointFlagValues } from '../agent/flags.ts'
import { setupAgentLog } from '../agent/log-output.ts'
import { Agent } from '../agent/reconnect.ts'
import { Dashboard } from '../agent/dashboard.ts'
import { VERSION } from './version.ts'
import type { EndpointSpec } from '../agent/spec.ts'
import type { EndpointKind } from '../agent/upstream.ts'
import { policyProblems } from '../agent/check.ts'
import { CODES, WarrenError } from '../lib/errors.ts'
import { log } from '../lib/log.ts'
import { CaptureStore } from '../inspect/capture.ts'
import { startInspector } from '../inspect/server.ts'

const ENDPOINT_USAGE =
  '[--url URL] [--binding public|internal] [--pooling-enabled] [--traffic-policy-file FILE] [--authtoken TOKEN] [--server-addr HOST:PORT] [--server-ca FILE] [--upstream-tls-verify] [--upstream-proxy-protocol 1|2] [--name N] [--description D] [--metadata M] [--config FILE]... [--log stdout|stderr|false|FILE] [--log-format json|logfmt|term] [--log-level L] [--web-addr HOST:PORT|false] [--inspect=false]'

export const HTTP_USAGE = `warren http <port|host:port|http(s)://…|file:///path|unix:/path> ${ENDPOINT_USAGE} [--domain NAME] [--basic-auth USER:PASS]... [--verify-webhook PROVIDER --verify-webhook-secret SECRET] [--request-header-add 'NAME: VALUE']... [--request-header-remove NAME]... [--response-header-add|--response-header-remove …]... [--cidr-allow CIDR]... [--cidr-deny CIDR]... [--scheme http|https]... [--upstream-protocol http1|http2] [--host-header rewrite|HOST] [--upstream-dotfiles] [--oauth PROVIDER --oauth-client-id ID --oauth-client-secret SECRET [--oauth-scope S]... [--oauth-allow-email E]... [--oauth-allow-domain D]...] [--oidc ISSUER_URL --oidc-client-id ID --oidc-client-secret SECRET [--oidc-scope S]... [--oidc-allow-email E]... [--oidc-allow-domain D]...]`
export const TCP_USAGE = `warren tcp <port|host:port|unix:/path> ${ENDPOINT_USAGE} [--remote-addr HOST:PORT] [--cidr-allow CIDR]... [--cidr-deny CIDR]...`
export const TLS_USAGE = `warren tls <port|host:port|unix:/path> ${ENDPOINT_USAGE} [--domain NAME] [--cidr-allow CIDR]... [--cidr-deny CIDR]... [--crt FILE --key FILE]`
export const START_USAGE =
  'warren start [NAME...] [--all] [--config FILE]... [--authtoken TOKEN] [--server-addr HOST:PORT] [--server-ca FILE] [--log stdout|stderr|false|FILE] [--log-format json|logfmt|term] [--log-level L] [--web-addr HOST:PORT|false] [--inspect=false]'
export const CONFIG_USAGE = 'warren config check [--config FILE]... | add-authtoken TOKEN [--config FILE] | add-server HOST:PORT [--server-ca FILE] [--config FILE]'

/**
 * Runs the agent for `endpoints` until SIGINT/SIGTERM (or the edge stops it): connects, prints one
 * `Forwarding <url> -> <upstream>` line per endpoint, reconnects on drops, and on the way out unbinds,
 * lets open connections finish and says goodbye.
 */
async function runAgent(command: string, endpoints: EndpointSpec[], values: Parameters<typeof resolveSettings>[0], configPaths: string[]): Promise<number> {
  const config = loadAgentConfig(configPaths)
  const settings = resolveSettings(values, config)
  const ca = readCa(settings.serverCaPath)
  // Every endpoint is checked before the first is bound: one bad endpoint must not leave others bound.
  const problems = endpoints.flatMap((spec) => policyProblems(spec))
  if (problems.length) throw new WarrenError(CODES.CONFIG_INVALID, `${problems.length === 1 ? 'An endpoint is' : 'Endpoints are'} invalid; nothing was started:\n${problems.join('\n')}`)
  // On a terminal, with no log destination asked for, the dashboard replaces the log lines (as ngrok's console UI).
  const useDashboard = process.stdout.isTTY === true && values.log === undefined && config.agent.log === undefined && config.agent.console_ui !== false
  const output = setupAgentLog({ log: useDashboard ? false : settings.log, format: settings.logFormat, level: settings.logLevel })
  const logger = log.child({ component: 'agent' })
  // Captured for the inspector and the dashboard's request list; HTTP endpoints only (tcp/tls bytes are opaque).
  const capture = (settings.webAddr !== false || useDashboard) && endpoints.some((e) => e.kind === 'http') ? new CaptureStore() : undefined
  let inspector: { url: string; stop(): void } | undefined

  let stopRequested: ((code: number) => void) | undefined
  const stopped = new Promise<number>((r) => (stopRequested = r))
  const starting = new AbortController()
  const onSignal = (signal: string) => {
    logger.info('shutting down', { signal })
    starting.abort()
    stopRequested?.(0)
  }
  const sigint = () => onSignal('SIGINT')
  const sigterm = () => onSignal('SIGTERM')
  process.on('SIGINT', sigint)
  process.on('SIGTERM', sigterm)

  const agent = new Agent({
    serverAddr: settings.serverAddr,
    ca,
    authtoken: settings.authtoken,
    metadata: settings.metadata,
    heartbeatIntervalMs: settings.heartbeatIntervalMs,
    heartbeatToleranceMs: settings.heartbeatToleranceMs,
    endpoints,
    log: logger,
    capture,
    onConnection: (done) => dashboard?.connectionDone(done),
    onForwarding(state) {
      if (!output.toStdout && !useDashboard) process.stdout.write(`Forwarding ${state.url} -> ${state.spec.upstream.text}\n`)
    },
    onStopRequested(why) {
      logger.error('stopping', { reason: why })
      stopRequested?.(1)
    },
  })
  const dashboard = useDashboard
    ? new Dashboard(
        {
          status: () => (agent.session === undefined ? 'connecting' : agent.session.online ? 'online' : 'reconnecting'),
          account: () => agent.session?.account,
          version: VERSION,
          server: settings.serverAddr,
          latencyMs: () => agent.latencyMs,
          webInterface: () => inspector?.url,
          forwarding: () => agent.endpoints.filter((e) => e.url).map((e) => ({ url: e.url, upstream: e.spec.upstream.text })),
          connections: () => ({ total: agent.connections, open: agent.activeConnections }),
        },
        { capture },
      )
    : undefined
  dashboard?.start()
  try {
    try {
      await agent.start(starting.signal)
    } catch (err) {
      dashboard?.stop()
      if (starting.signal.aborted) return 0
      if (err instanceof TunnelError) {
        logger.error('cannot start the agent', { error: err.message, code: err.code })
        process.stderr.write(`warren ${command}: ${err.message}${err.code ? ` [${err.code}]` : ''}\n`)
        return 1
      }
      throw err
    }
    if (capture && settings.webAddr !== false) {
      try {
        inspector = startInspector(settings.webAddr, {
          store: capture,
          status: () => ({
            online: agent.session?.online ?? false,
            client_id: agent.session?.clientId,
            account: agent.session?.account,
            server: settings.serverAddr,
            latency_ms: agent.latencyMs ?? null,
            connections: { total: agent.connections, open: agent.activeConnections },
            endpoints: agent.endpoints.map((e) => ({ name: e.spec.name, url: e.url, upstream: e.spec.upstream.text, online: e.online })),
          }),
          endpoints: () =>
            agent.endpoints.map((e) => ({ name: e.spec.name, url: e.url, upstream: e.spec.upstream, online: e.online, kind: e.spec.kind, ...(e.spec.upstreamProtocol ? { upstreamProtocol: e.spec.upstreamProtocol } : {}) })),
        })
        logger.info(`Web Interface ${inspector.url}`, { web_addr: inspector.url })
        if (!output.toStdout && !useDashboard) process.stdout.write(`Web Interface ${inspector.url}\n`)
      } catch (err) {
        logger.warn('the inspector could not start', { error: (err as Error).message })
      }
    }
    const code = await stopped
    dashboard?.stop()
    inspector?.stop()
    await agent.stop()
    logger.info('agent stopped', { connections: agent.connections })
    return code
  } finally {
    dashboard?.stop()
    process.off('SIGINT', sigint)
    process.off('SIGTERM', sigterm)
  }
}

function endpointCommand(kind: EndpointKind) {
  return async function endpoint(args: string[]): Promise<number> {
    const { values, positionals } = parseArgs({ args: normalizeArgs(args), options: ENDPOINT_FLAGS, allowPositionals: true, strict: true })
    if (positionals.length > 1) throw new WarrenError(CODES.CONFIG_INVALID, `warren ${kind} takes one upstream, got ${positionals.length}: ${positionals.join(' ')}`)
    const endpoints = endpointsFromFlags(kind, positionals[0], values as EndpointFlagValues)
    return runAgent(kind, endpoints, values, values.config ?? [])
  }
}

/** `warren http <upstream>`: an HTTP endpoint (https:// by default) forwarding to a local service. */
export const httpCommand = endpointCommand('http')
/** `warren tcp <upstream>`: a tcp:// endpoint (the edge picks a port of the account's range). */
export const tcpCommand = endpointCommand('tcp')
/** `warren tls <upstream>`: a tls:// endpoint; the client's TLS passes through to the upstream, or is terminated by the agent (`--crt`/`--key`). */
export const tlsCommand = endpointCommand('tls')

/** `warren start [names…|--all]`: the endpoints of the config file(s). */
export async function startCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: normalizeArgs(args), options: { ...AGENT_FLAGS, all: { type: 'boolean' } }, allowPositionals: true, strict: true })
  const config = loadAgentConfig(values.config ?? [])
  const endpoints = selectEndpoints(config, positionals, values.all ?? false)
  return runAgent('start', endpoints, values, values.config ?? [])
}

/** Sets `agent.<key>` in a config file, keeping its comments and other keys; creates it when missing. */
function setAgentKeys(path: string, keys: Record<string, string>): void {
  const doc = existsSync(path) ? parseDocument(readFileSync(path, 'utf8')) : parseDocument('version: 3\n')
  if (doc.errors.length) throw new WarrenError(CODES.CONFIG_INVALID, `Cannot update "${path}": ${doc.errors[0]!.message.split('\n')[0]}`)
  if (!doc.has('version')) doc.set('version', 3)
  for (const [k, v] of Object.entries(keys)) doc.setIn(['agent', k], v)
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, doc.toString(), { mode: 0o600 })
  chmodSync(path, 0o600)
}

/** `warren config check|add-authtoken|add-server`. */
export async function configCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args
  const { values, positionals } = parseArgs({ args: rest, options: { config: { type: 'string', multiple: true }, 'server-ca': { type: 'string' } }, allowPositionals: true, strict: true })
  const paths = values.config ?? []
  switch (sub) {
    case 'check': {
      const config = loadAgentConfig(paths)
      if (config.sources.length === 0) {
        process.stderr.write(`warren config check: no config file at ${defaultConfigPath()}\n`)
        return 1
      }
      const problems: string[] = []
      for (const sourced of config.endpoints) {
        try {
          problems.push(...policyProblems(endpointFromEntry(sourced), `${sourced.source}: endpoint "${sourced.entry.name}"`))
        } catch (err) {
          if (err instanceof WarrenError) problems.push(`${err.message} [${err.code}]`)
          else throw err
        }
      }
      const ca = config.agent.connect_cas
      if (ca && ca !== 'host' && ca !== 'trusted' && !existsSync(ca)) problems.push(`agent.connect_cas: no such file "${ca}" [${CODES.CONFIG_INVALID}]`)
      if (problems.length) {
        process.stderr.write(problems.join('\n') + '\n')
        return 1
      }
      process.stdout.write(`Valid configuration file${config.sources.length > 1 ? 's' : ''} at ${config.sources.join(', ')}\n`)
      return 0
    }
    case 'add-authtoken': {
      const token = positionals[0]
      if (!token || positionals.length > 1) throw new WarrenError(CODES.CONFIG_INVALID, 'usage: warren config add-authtoken TOKEN [--config FILE]')
      const path = resolve(paths.at(-1) ?? defaultConfigPath())
      setAgentKeys(path, { authtoken: token })
      process.stdout.write(`Authtoken saved to configuration file: ${path}\n`)
      return 0
    }
    case 'add-server': {
      const addr = positionals[0]
      if (!addr || positionals.length > 1) throw new WarrenError(CODES.CONFIG_INVALID, 'usage: warren config add-server HOST:PORT [--server-ca FILE] [--config FILE]')
      const path = resolve(paths.at(-1) ?? defaultConfigPath())
      const keys: Record<string, string> = { connect_url: addr }
      if (values['server-ca']) {
        const ca = resolve(values['server-ca'])
        if (!existsSync(ca)) throw new WarrenError(CODES.CONFIG_INVALID, `No such CA file "${ca}"`)
        keys.connect_cas = ca
      }
      setAgentKeys(path, keys)
      process.stdout.write(`Server saved to configuration file: ${path}\n`)
      return 0
    }
    default:
      process.stderr.write(`${CONFIG_USAGE}\n`)
      return 2
  }
}
