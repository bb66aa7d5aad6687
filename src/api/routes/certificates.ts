import { Hono } from 'hono'

/** A certificate as the store holds it (`CertPair` without the PEM). */
export interface CertificateInfo {
  names: readonly string[]
  notAfter: Date
  issuer: string
  source: string
}

/** `/certificates`: every certificate the edge holds, with its names, issuer and expiry (never the key). */
export function certificateRoutes(options: { certificates: () => readonly CertificateInfo[] }): Hono {
  const app = new Hono()
  app.get('/', (c) => {
    const now = Date.now()
    const certificates = options
      .certificates()
      .map((p) => ({
        names: [...p.names],
        source: p.source,
        issuer: p.issuer,
        not_after: p.notAfter.toISOString(),
        expires_in_seconds: Math.floor((p.notAfter.getTime() - now) / 1000),
        expired: p.notAfter.getTime() <= now,
      }))
      .sort((a, b) => a.not_after.localeCompare(b.not_after))
    return c.json({ certificates })
  })
  return app
}
