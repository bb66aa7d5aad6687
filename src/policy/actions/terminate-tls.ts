import { createPrivateKey, X509Certificate } from 'node:crypto'
import * as v from 'valibot'
import type { CompiledPolicy } from '../engine.ts'
import { CONTINUE, defineAction, type ActionRun } from '../types.ts'

const VERSIONS = ['1.2', '1.3'] as const

/** Key under which the action leaves its settings on the exchange for the TLS listener. */
export const TERMINATE_TLS = 'terminate_tls'

/** Every terminate-tls action built, so the TLS port can tell which policies may use one. */
const BUILT = new WeakSet<ActionRun>()

/**
 * Whether `policy` may terminate TLS with its own settings (a terminate-tls action in on_tcp_connect):
 * the TLS port then has to read the ClientHello before any TLS stack sees it.
 */
export function terminatesTls(policy: CompiledPolicy): boolean {
  return policy.on_tcp_connect.some((rule) => rule.actions.some((run) => BUILT.has(run)))
}

/** What the TLS listener needs to terminate a connection as the policy asked. */
export interface TerminateTlsSettings {
  minVersion: 'TLSv1.2' | 'TLSv1.3'
  maxVersion: 'TLSv1.2' | 'TLSv1.3'
  cert?: string
  key?: string
  /** Set for mutual TLS. */
  clientCas?: string[]
  verification?: 'require-and-verify' | 'require-any' | 'request'
}

/**
 * Terminates TLS at the edge for tls:// endpoints (which otherwise pass TLS through) with these
 * protocol versions, server certificate and mutual TLS; the plaintext then goes where the policy
 * forwards it. On https:// endpoints it sets versions and mutual TLS for that endpoint.
 */
export const terminateTls = defineAction({
  type: 'terminate-tls',
  phases: ['on_tcp_connect'],
  terminating: false,
  // It only leaves its settings on the exchange; being read-only also keeps its run function
  // unwrapped, which is how `terminatesTls` recognises it.
  readOnly: true,
  config: v.strictObject({
    /** Lowest TLS version accepted: "1.2" (default) or "1.3". */
    min_version: v.optional(v.picklist(VERSIONS, 'must be "1.2" or "1.3"'), '1.2'),
    /** Highest TLS version accepted: "1.2" or "1.3" (default). */
    max_version: v.optional(v.picklist(VERSIONS, 'must be "1.2" or "1.3"'), '1.3'),
    /** PEM server certificate (chain) to present instead of the managed one; needs `server_private_key`. */
    server_certificate: v.optional(v.string()),
    /** PEM private key of `server_certificate`. */
    server_private_key: v.optional(v.string()),
    /** PEM CA certificates that client certificates must chain to; setting it turns on mutual TLS. */
    mutual_tls_certificate_authorities: v.optional(v.array(v.string())),
    /** `require-and-verify` (default), `require-any` (any client certificate) or `request` (optional). */
    mutual_tls_verification_strategy: v.optional(v.picklist(['require-and-verify', 'require-any', 'request']), 'require-and-verify'),
  }),
  build(config, env) {
    if (env.scheme !== 'https' && env.scheme !== 'tls') throw new Error(`terminate-tls applies to https:// and tls:// endpoints, not ${env.scheme}://`)
    if (config.min_version > config.max_version) throw new Error(`min_version ${config.min_version} is above max_version ${config.max_version}`)
    const cert = config.server_certificate
    const key = config.server_private_key
    if ((cert === undefined) !== (key === undefined)) throw new Error('server_certificate and server_private_key go together')
    // Literal PEM is checked now; `${…}` values can only be checked when the TLS layer renders them.
    const literal = (s: string) => !s.includes('${')
    if (cert !== undefined && key !== undefined && literal(cert) && literal(key)) {
      let x509: X509Certificate
      try {
        x509 = new X509Certificate(cert)
      } catch (err) {
        throw new Error(`server_certificate is not a PEM certificate: ${(err as Error).message}`)
      }
      let privateKey
      try {
        privateKey = createPrivateKey(key)
      } catch (err) {
        throw new Error(`server_private_key is not a PEM private key: ${(err as Error).message}`)
      }
      if (!x509.checkPrivateKey(privateKey)) throw new Error('server_private_key does not belong to server_certificate')
    }
    config.mutual_tls_certificate_authorities?.forEach((ca, i) => {
      if (!literal(ca)) return
      try {
        new X509Certificate(ca)
      } catch (err) {
        throw new Error(`mutual_tls_certificate_authorities[${i}] is not a PEM certificate: ${(err as Error).message}`)
      }
    })
    const settings: TerminateTlsSettings = {
      minVersion: `TLSv${config.min_version}` as TerminateTlsSettings['minVersion'],
      maxVersion: `TLSv${config.max_version}` as TerminateTlsSettings['maxVersion'],
      ...(cert !== undefined && key !== undefined ? { cert, key } : {}),
      ...(config.mutual_tls_certificate_authorities ? { clientCas: config.mutual_tls_certificate_authorities, verification: config.mutual_tls_verification_strategy } : {}),
    }
    const run: ActionRun = function terminateTls(ex) {
      // The TLS listener reads this after on_tcp_connect and terminates with these settings.
      ex.actions[TERMINATE_TLS] = settings
      return CONTINUE
    }
    BUILT.add(run)
    return run
  },
})
