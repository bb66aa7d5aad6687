import { join } from 'node:path'
import { CODES } from '../lib/errors.ts'
import { keepLiveLinks, linkDialer, serveLink } from './link.ts'
import { LocalRegistry } from './local-registry.ts'
import { attachMember, type ClusterMember, type MemberOptions } from './member.ts'

export interface WorkerOptions extends Omit<MemberOptions, 'dial'> {
  /** The supervisor's runtime directory (control socket, one link socket per worker). */
  dir: string
}

/** What a worker of `warren serve --workers N` adds to an edge: the other workers' agents and sessions. */
export interface Worker extends ClusterMember {
  /** This worker serves traffic (the supervisor starts the next worker). */
  ready(): void
}

/**
 * Connects to the supervisor (before the edge's listeners: the ACME manager shares its state through
 * it). `lost` runs when the supervisor goes away.
 */
export function connectWorker(options: { number: number; dir: string; lost: () => void }): Promise<LocalRegistry> {
  const member = `w${options.number}.${process.pid}`
  return LocalRegistry.join(join(options.dir, 'control.sock'), { member, link: linkPath(options.dir, member), lost: options.lost })
}

const linkPath = (dir: string, member: string) => join(dir, `${member}.sock`)

/**
 * Joins the other workers: serves this worker's agents to them over the link (a unix socket in the
 * supervisor's private directory), publishes what this worker holds to the registry, and keeps the
 * other workers' agent endpoints in the table.
 */
export function joinWorkers(cluster: LocalRegistry, options: WorkerOptions): Worker {
  const { registry } = options
  // Only a worker started from a replaced executable (an upgrade under a running supervisor) speaks another link version.
  const link = serveLink(linkPath(options.dir, cluster.self), (r) => registry.connectLocal(r.account, r.tunnel, r.client, { wait: r.wait }), {
    refused: () => options.log.warn('link connection from a worker running another link version refused: restart the whole edge to upgrade', { code: CODES.CLUSTER_LINK_VERSION }),
  })
  cluster.onLost((claim, holder) => options.release(claim, `The endpoint ${claim.url.scheme}://${claim.url.host} is already online on worker ${holder.split('.')[0]} (${CODES.CLUSTER_URL_TAKEN}).`))
  const dialer = linkDialer()
  const joined = attachMember(cluster, { ...options, dial: dialer.dial })
  const unwatch = keepLiveLinks(dialer, cluster)
  return {
    sessions: joined.sessions,
    tunnels: joined.tunnels,
    ready: () => cluster.ready(),
    link: { stopAccepting() {}, inFlight: () => link.active, cut: () => link.stop() },
    close() {
      joined.detach()
      unwatch()
      dialer.close()
      link.stop()
      cluster.close()
    },
  }
}
