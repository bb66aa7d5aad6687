import type { Socket } from 'bun'
import type { TunnelStream, TunnelTarget } from '../endpoints/endpoint.ts'
import { proxyHeader, type Addresses } from './proxy-protocol.ts'
import { attachRelay, type Relay, type RelayConn, type RelayStats } from './tcp-relay.ts'

/**
 * Relays a client connection through an agent's tunnel: one proxy stream per connection, starting
 * with a PROXY protocol header when the agent asked for one, then `first` (e.g. a peeked ClientHello).
 * Resolves false when the agent cannot be reached in time.
 */
export async function relayToTunnel(
  client: Socket<RelayConn>,
  tunnel: TunnelTarget,
  options: { addresses: Addresses; first?: Uint8Array; onDone?: (stats: RelayStats) => void },
): Promise<boolean> {
  const a = options.addresses
  const stream = await tunnel.connect(`${a.clientIp.includes(':') ? `[${a.clientIp}]` : a.clientIp}:${a.clientPort}`)
  if (!stream) return false
  if (client.data.closed) {
    stream.terminate()
    return true
  }
  const header = proxyHeader(tunnel.proxyProtocol, a)
  let first = options.first
  if (header) {
    const joined = new Uint8Array(header.length + (first?.length ?? 0))
    joined.set(header)
    if (first) joined.set(first, header.length)
    first = joined
  }
  relayThroughStream(client, stream, { ...(first ? { first } : {}), ...(options.onDone ? { onDone: options.onDone } : {}) })
  return true
}

/** Relays a client connection through an open tunnel stream: the relay, fed by the stream's events. */
export function relayThroughStream(client: Socket<RelayConn>, stream: TunnelStream, options: { first?: Uint8Array; onDone?: (stats: RelayStats) => void }): Relay {
  const relay = attachRelay(client, stream, options)
  feedRelayFromStream(relay, stream)
  return relay
}

/** Hands a tunnel stream's events to the relay whose upstream side it is. */
export function feedRelayFromStream(relay: Relay, stream: TunnelStream): void {
  stream.ondata = (chunk) => relay.fromUpstream(chunk)
  stream.ondrain = () => relay.upstreamDrained()
  stream.onend = () => relay.upstreamEnded()
  stream.onclose = ((prev) => () => {
    prev()
    relay.upstreamClosed()
  })(stream.onclose)
}
