import type { CertMeta } from './store.ts'

/** A certificate as the nodes share it: the PEM chain, its key and warren's metadata. */
export interface SharedCertificate {
  cert: string
  key: string
  meta: CertMeta
}

/** The order lock of one name while this node orders it. */
export interface OrderLock {
  /** False once the lock ran out under this node (another node may be ordering the name too). */
  readonly held: boolean
  release(): Promise<void>
}

/**
 * What several edges running one set of certificates share (`cluster.redis`): one ACME account, the
 * certificates, an order lock per name so one edge orders and every edge serves, and the challenge
 * answers, so whichever edge the CA's validation reaches can answer it. Every method rejects while the
 * shared store is unreachable.
 */
export interface AcmeShare {
  /** The account key for the directory `id` (AcmeStore's accountId), made by `make` on the first edge that asks. */
  accountKey(id: string, make: () => Promise<string>): Promise<string>
  certificate(name: string): Promise<SharedCertificate | undefined>
  certificates(): Promise<SharedCertificate[]>
  /** Stores a certificate; every edge's `onChange` listener runs. */
  save(certificate: SharedCertificate): Promise<void>
  onChange(listener: () => void): void
  /** Takes the order lock of `name`, or resolves undefined while another edge holds it. */
  lock(name: string): Promise<OrderLock | undefined>
  /** Whether any edge holds the order lock of `name`. */
  locked(name: string): Promise<boolean>
  /** Publishes a challenge answer (`key` names the challenge) while a validation may come. */
  putChallenge(key: string, value: string): Promise<void>
  challenge(key: string): Promise<string | undefined>
  deleteChallenge(key: string): Promise<void>
}

/** The share key of an HTTP-01 answer. */
export const http01Key = (name: string, token: string) => `http-01:${name.toLowerCase()}:${token}`
/** The share key of a TLS-ALPN-01 key authorization. */
export const tlsAlpn01Key = (name: string) => `tls-alpn-01:${name.toLowerCase()}`
