import type { Server } from 'bun'
import { inspectorHandler, type InspectorSource } from './routes.ts'

/** The default inspector address, as ngrok's (`web_addr`). */
export const DEFAULT_WEB_ADDR = '127.0.0.1:4040'

/**
 * Starts the inspector on `addr` (`host:port`). When the port is taken (another agent runs), the next
 * ones are tried, up to `tries` ports, as ngrok's agent does; throws when none is free.
 */
export function startInspector(addr: string, source: InspectorSource, options: { tries?: number } = {}): { url: string; stop(): void } {
  const colon = addr.lastIndexOf(':')
  const hostname = addr.slice(0, colon).replace(/^\[|\]$/g, '') || '127.0.0.1'
  const first = Number(addr.slice(colon + 1))
  if (colon === -1 || !Number.isInteger(first) || first < 0 || first > 65535) throw new RangeError(`web_addr must be host:port, got "${addr}"`)
  // A name other than loopback (e.g. 0.0.0.0 or a LAN name) must also be accepted as Host.
  const handler = inspectorHandler(source, { allowedHosts: [hostname.includes(':') ? `[${hostname}]` : hostname] })
  const tries = first === 0 ? 1 : (options.tries ?? 10)
  let lastError: unknown
  for (let port = first; port < first + tries && port <= 65535; port++) {
    try {
      const server: Server<undefined> = Bun.serve({ hostname, port, fetch: handler, idleTimeout: 30 })
      const shown = hostname.includes(':') ? `[${hostname}]` : hostname
      return { url: `http://${shown}:${server.port}`, stop: () => void server.stop(true) }
    } catch (err) {
      lastError = err
    }
  }
  throw new Error(`cannot listen on ${addr} or the ${tries - 1} ports after it: ${(lastError as Error)?.message}`)
}
