import { EncryptJWT, jwtDecrypt, type JWTPayload } from 'jose'

/**
 * Session and login-flow cookies of the identity actions: JWTs encrypted with the edge's session key
 * (`dir` + A256GCM, so they are also authenticated: a changed byte fails to open). `audience` ties a
 * cookie to one action config on one host, so a session made for one endpoint or provider never
 * opens at another.
 */
export async function seal(payload: JWTPayload, key: Uint8Array, options: { audience: string; expiresAt: number }): Promise<string> {
  return new EncryptJWT(payload)
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
    .setAudience(options.audience)
    .setIssuedAt()
    .setExpirationTime(Math.floor(options.expiresAt / 1000))
    .encrypt(key)
}

/** The payload of a cookie `seal` made for `audience`; undefined when it is not one (tampered, expired, another key). */
export async function unseal(token: string, key: Uint8Array, options: { audience: string }): Promise<JWTPayload | undefined> {
  try {
    const { payload } = await jwtDecrypt(token, key, { audience: options.audience, keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM'] })
    return payload
  } catch {
    return undefined
  }
}

/** A `Set-Cookie` value for the identity cookies: HttpOnly, Lax (the IdP's redirect back is a top-level GET), Secure on https. */
export function cookieHeader(name: string, value: string, options: { secure: boolean; maxAgeSeconds?: number }): string {
  const parts = [`${name}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Lax']
  if (options.secure) parts.push('Secure')
  if (options.maxAgeSeconds !== undefined) parts.push(`Max-Age=${Math.max(0, Math.floor(options.maxAgeSeconds))}`)
  return parts.join('; ')
}

/** Clears a cookie `cookieHeader` set. */
export function clearCookie(name: string, secure: boolean): string {
  return cookieHeader(name, '', { secure, maxAgeSeconds: 0 })
}
