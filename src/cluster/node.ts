import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { issueLeaf } from '../certs/dev-ca.ts'
import { loadOrCreateDevCa } from '../certs/index.ts'
import { splitAddress } from '../config/server.ts'
import { CODES, WarrenError } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'
import { keepLiveLinks, linkDialer, serveLink } from './link.ts'
import { attachMember, type ClusterMember, type MemberOptions } from './member.ts'
import { newSecret, RedisRegistry } from './redis-registry.ts'
import { loadSessionKey } from '../policy/identity/session-key.ts'

/** The name in the cluster's link certificate, which every node checks when it dials another. */
const LINK_NAME = 'warren-cluster'

/** `cluster:` in warren.yaml. */
export interface ClusterConfig {
  redis: string
  node?: string | undefined
  link: { listen: string; advertise?: string | undefined }
  /** Seconds. */
  lease: number
}

/** What every node shares through Redis: the link's CA, certificate and key, and its secret. */
interface LinkMaterial {
  ca: string
  cert: string
  key: string
  secret: string
}

/** A node connected to Redis, before its edge has listeners and agents to publish. */
export interface ConnectedNode {
  registry: RedisRegistry
  /** Signs agents' resume cookies: the same on every node, so an agent keeps its session id on any. */
  cookieSecret: Buffer
  /** Seals the oauth/openid-connect session cookies: the same on every node, so a user signed in on one is on all. */
  identityKey: Uint8Array
  link: LinkMaterial
  config: ClusterConfig
}

/**
 * Connects to `cluster.redis` (ERR_WARREN_7020 when it cannot) and fetches what the nodes share,
 * creating it on the first node: the link's certificate (its own CA, never the edge's) and secrets.
 */
export async function connectNode(config: ClusterConfig, options: { member: string; graceMs: number; certsDir: string; log: Logger }): Promise<ConnectedNode> {
  const registry = await RedisRegistry.connect({ url: config.redis, member: options.member, leaseMs: config.lease * 1000, graceMs: options.graceMs, log: options.log })
  try {
    const link = JSON.parse(await registry.shared('link', makeLinkMaterial)) as LinkMaterial
    const cookieSecret = Buffer.from(await registry.shared('cookie-secret', async () => newSecret()), 'base64url')
    // The first node offers its own key, so the users it signed in stay signed in on every node.
    const identityKey = new Uint8Array(Buffer.from(await registry.shared('identity-session-key', async () => Buffer.from(await loadSessionKey(options.certsDir)).toString('base64url')), 'base64url'))
    return { registry, cookieSecret, identityKey, link, config }
  } catch (err) {
    registry.close()
    throw err
  }
}

/** A CA made for the cluster alone and one certificate every node's link presents. */
async function makeLinkMaterial(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'warren-cluster-ca-'))
  try {
    const { ca } = await loadOrCreateDevCa(dir)
    const leaf = await issueLeaf(ca, [LINK_NAME], { days: 3650 })
    return JSON.stringify({ ca: ca.certPem, cert: leaf.cert, key: leaf.key, secret: newSecret() } satisfies LinkMaterial)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export type NodeOptions = Omit<MemberOptions, 'dial'>

/**
 * Joins the other nodes: serves this node's agents to them over the TLS link, publishes what this
 * node holds to Redis, and keeps the other nodes' agent endpoints in the table.
 */
export async function joinNodes(node: ConnectedNode, options: NodeOptions): Promise<ClusterMember> {
  const { registry: agents, log } = options
  const secret = Buffer.from(node.link.secret, 'base64url')
  const listen = splitAddress(node.config.link.listen)
  let link: ReturnType<typeof serveLink>
  try {
    link = serveLink(
      { hostname: listen.hostname, port: listen.port, tls: { cert: node.link.cert, key: node.link.key }, secret },
      (r) => agents.connectLocal(r.account, r.tunnel, r.client, { wait: r.wait }),
      {
        refused: (remote, why) =>
          why === 'secret'
            ? log.warn('link connection without the cluster secret refused', { remote, code: CODES.CLUSTER_LINK_REFUSED })
            : log.warn('link connection from a node running another link version refused: upgrade every node together', { remote, code: CODES.CLUSTER_LINK_VERSION }),
      },
    )
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code
    throw new WarrenError(CODES.LISTEN_FAILED, `Cannot listen on ${node.config.link.listen} (cluster.link.listen): ${typeof code === 'string' ? code : err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
  const dialer = linkDialer({ tls: { ca: node.link.ca, serverName: LINK_NAME }, secret })
  node.registry.onLost((claim, holder) => options.release(claim, `The endpoint ${claim.url.scheme}://${claim.url.host} is already online on node ${holder} (${CODES.CLUSTER_URL_TAKEN}).`))
  await node.registry.start(node.config.link.advertise ?? `${listen.hostname}:${link.port}`)
  const joined = attachMember(node.registry, { ...options, dial: dialer.dial })
  const unwatch = keepLiveLinks(dialer, node.registry)
  log.info('cluster node joined', { node: node.registry.self, link: node.config.link.advertise ?? node.config.link.listen })
  return {
    sessions: joined.sessions,
    tunnels: joined.tunnels,
    link: { stopAccepting() {}, inFlight: () => link.active, cut: () => link.stop() },
    close() {
      joined.detach()
      unwatch()
      dialer.close()
      link.stop()
      node.registry.close()
    },
  }
}
