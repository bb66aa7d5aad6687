import { CODES, WarrenError } from '../lib/errors.ts'

/** The edge's listeners, as warren.yaml's `listen:` keys and `warren serve` flags name them. */
export type ListenerName = 'http' | 'https' | 'agent' | 'api' | 'ssh'

/** Why a listen failed, and what to do about it, per errno code. */
function explain(code: string | undefined, listener: ListenerName, address: string): { cause: string; hint: string } {
  const elsewhere = `choose another address with --${listener} HOST:PORT or listen.${listener} in warren.yaml`
  const port = address.slice(address.lastIndexOf(':') + 1)
  switch (code) {
    case 'EADDRINUSE':
      return { cause: 'address already in use (EADDRINUSE)', hint: `another process listens there (find it: ss -ltnp 'sport = :${port}'); stop it or ${elsewhere}` }
    case 'EACCES':
      return {
        cause: 'permission denied (EACCES)',
        hint: `ports below 1024 need root or CAP_NET_BIND_SERVICE (sudo setcap cap_net_bind_service=+ep "$(command -v warren)"), or listen on a higher port and set public_ports`,
      }
    case 'EADDRNOTAVAIL':
      return { cause: 'the address is not one of this host (EADDRNOTAVAIL)', hint: `use an address of this machine, 0.0.0.0 (all) or 127.0.0.1, or ${elsewhere}` }
    default:
      return { cause: code ? `failed (${code})` : 'failed', hint: elsewhere }
  }
}

/**
 * Turns a failed listen into one line a newcomer can act on: listener, address, cause, hint and a
 * stable code (Bun's own errors name neither the listener nor, for TLS ports, the address).
 */
export function listenFailure(err: unknown, listener: ListenerName, address: string): WarrenError {
  // Already explained (e.g. a bad api_keys entry found while starting the API): not a listen failure.
  if (err instanceof WarrenError) return err
  const code = (err as { code?: unknown } | null)?.code
  const { cause, hint } = explain(typeof code === 'string' ? code : undefined, listener, address)
  return new WarrenError(CODES.LISTEN_FAILED, `Cannot listen on ${address} (listen.${listener}): ${cause}. Hint: ${hint}`, { cause: err })
}

/**
 * Opens one listener, failing with `listenFailure`.
 *
 * @example const server = await openListener('http', '127.0.0.1:8080', () => listenHttp(options))
 */
export async function openListener<T>(listener: ListenerName, address: string, open: () => T | Promise<T>): Promise<T> {
  try {
    return await open()
  } catch (err) {
    throw listenFailure(err, listener, address)
  }
}
