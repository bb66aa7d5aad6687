import type { CertPair } from '../certs/pair.ts'
import type { Logger } from '../lib/log.ts'
import type { AgentSession } from '../tunnel/session.ts'

/** What a started agent listener offers (listenAgents' result). */
export interface AgentPort {
  listener: { stop(closeActiveConnections?: boolean): void }
  readonly sessions: Iterable<AgentSession>
}

/** What the agent port needs from the certificate store. */
export interface AgentCertSource {
  select(name: string): CertPair | undefined
  onChange(listener: () => void): () => void
}

/**
 * The agent port when its certificate comes from ACME: it starts once a certificate for one of
 * `names` (in order) is served, and restarts on a new one (renewal): the old listener stops accepting
 * but keeps its sessions, the new one takes the port. Bun's TLS listeners cannot swap certificates.
 *
 * @example
 * const agents = followAgentCertificate(certs, ['agent.example.com'], (tls) => listenAgents({ ...options, tls }), { log, signal })
 */
export function followAgentCertificate(
  certs: AgentCertSource,
  names: readonly string[],
  start: (tls: { cert: string; key: string }) => AgentPort,
  options: { log: Logger; signal: AbortSignal },
): AgentPort {
  const ports: AgentPort[] = []
  let served: CertPair | undefined
  const pick = () => {
    const now = Date.now()
    for (const name of names) {
      const pair = certs.select(name)
      if (pair && pair.notAfter.getTime() > now) return pair
    }
    return undefined
  }
  const update = () => {
    if (options.signal.aborted) return
    const pair = pick()
    if (!pair || pair === served) return
    const previous = ports.at(-1)
    previous?.listener.stop(false)
    try {
      ports.push(start({ cert: pair.cert, key: pair.key }))
      served = pair
      options.log.info(previous ? 'agent port restarted with a new certificate' : 'agent port listening', { names: pair.names, not_after: pair.notAfter.toISOString() })
    } catch (err) {
      options.log.error(`Cannot start the agent port: ${(err as Error).message}`)
    }
  }
  update()
  if (!served) options.log.warn('the agent port starts once its certificate is issued', { names })
  const off = certs.onChange(update)
  options.signal.addEventListener('abort', off, { once: true })
  return {
    listener: {
      stop(closeActiveConnections) {
        for (const p of ports) p.listener.stop(closeActiveConnections)
      },
    },
    get sessions() {
      return ports.flatMap((p) => [...p.sessions])
    },
  }
}
