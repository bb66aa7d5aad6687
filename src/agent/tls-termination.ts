import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { connect as netConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import * as tls from 'node:tls'
import { CODES, WarrenError } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'
import type { Upstream } from './upstream.ts'

/** The certificate a tls:// endpoint's agent presents when it terminates TLS itself (PEM text). */
export interface AgentTlsTermination {
  cert: string
  key: string
}

function bad(message: string): WarrenError {
  return new WarrenError(CODES.CONFIG_INVALID, message)
}

/** PEM given inline (ngrok accepts it) or a file path. */
function pemOf(what: string, value: string, base: string): string {
  if (value.trimStart().startsWith('-----BEGIN ')) return value
  const path = resolve(base, value)
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    throw bad(`Cannot read ${what} "${path}": ${(err as Error).message}`)
  }
}

/**
 * Reads and checks the certificate and key of agent-side TLS termination (`--crt`/`--key`, or
 * `agent_tls_termination: {server_certificate, server_private_key}`); relative paths are relative
 * to `base`. A key that does not match the certificate is refused here, not at the first client.
 *
 * @example readAgentTls({ cert: 'site.crt', key: 'site.key', base: process.cwd(), names: ['--crt', '--key'] })
 */
export function readAgentTls(options: { cert: string; key: string; base: string; names: [string, string] }): AgentTlsTermination {
  const cert = pemOf(options.names[0], options.cert, options.base)
  const key = pemOf(options.names[1], options.key, options.base)
  try {
    tls.createSecureContext({ cert, key })
  } catch (err) {
    throw bad(`${options.names[0]}/${options.names[1]}: not a usable certificate and key: ${(err as Error).message}`)
  }
  return { cert, key }
}

/**
 * Agent-side TLS termination: one node:tls server per endpoint on a unix socket in a private
 * directory (0700). The proxy stream, still the client's TLS, is relayed to that socket like to any
 * upstream; the server terminates it with the endpoint's certificate and pipes the plaintext to the
 * real upstream. (The edge terminates `terminate-tls` the same way, through a loopback node:tls server.)
 */
export class TlsTerminators {
  readonly #log: Logger
  #dir: string | undefined
  readonly #servers = new Map<AgentTlsTermination, { upstream: Upstream; server: tls.Server }>()

  constructor(log: Logger) {
    this.#log = log
  }

  /** The local upstream to relay the proxy stream to: the terminator `start` made for `termination`. */
  upstreamFor(termination: AgentTlsTermination): Upstream {
    const known = this.#servers.get(termination)
    if (!known) throw new RangeError('TlsTerminators.upstreamFor(): start() was not called for this endpoint')
    return known.upstream
  }

  /** Starts the terminator of one endpoint (once); resolves when it listens. */
  async start(termination: AgentTlsTermination, upstream: Upstream, endpoint: string): Promise<void> {
    if (this.#servers.has(termination)) return
    this.#dir ??= mkdtempSync(join(tmpdir(), 'warren-agent-tls-'))
    const path = join(this.#dir, `tls-${this.#servers.size}.sock`)
    const log = this.#log
    const server = tls.createServer({ cert: termination.cert, key: termination.key }, function terminated(client) {
      if (upstream.kind === 'file') return void client.destroy()
      const plain =
        upstream.kind === 'net'
          ? upstream.tls
            ? tls.connect({ host: upstream.host, port: upstream.port, rejectUnauthorized: upstream.verify, servername: upstream.host })
            : netConnect({ host: upstream.host, port: upstream.port })
          : netConnect({ path: upstream.path })
      plain.on('error', (err) => {
        log.warn('upstream unreachable', { endpoint, upstream: upstream.text, error: (err as Error).message, code: CODES.UPSTREAM_REFUSED })
        client.destroy()
      })
      client.on('error', () => plain.destroy())
      client.pipe(plain)
      plain.pipe(client)
    })
    server.on('tlsClientError', (err) => log.debug('TLS handshake with a client failed', { endpoint, error: err.message }))
    const local: Upstream = { kind: 'unix', path, tls: false, verify: false, text: upstream.text }
    this.#servers.set(termination, { upstream: local, server })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(path, () => {
        server.off('error', reject)
        resolve()
      })
    })
  }

  dispose(): void {
    for (const { server } of this.#servers.values()) server.close()
    this.#servers.clear()
    if (this.#dir) rmSync(this.#dir, { recursive: true, force: true })
    this.#dir = undefined
  }
}
