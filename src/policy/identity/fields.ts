import * as v from 'valibot'
import { parseDuration } from '../../lib/duration.ts'
import { CODES, WarrenError } from '../../lib/errors.ts'
import { isLoopbackHost } from './flow.ts'

/** A Go-style duration of at least one second (`"30m"`, `"24h"`). */
export const SESSION_DURATION = v.pipe(
  v.string(),
  v.check((t) => (parseDuration(t) ?? 0) >= 1000, 'must be a duration of at least 1s, such as "30m" or "24h"'),
)

/** `auth_id` names cookies: a cookie-name-safe token. */
export const AUTH_ID = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, "-" or "_"'))

/** Fields `oauth` and `openid-connect` share (ngrok's names). */
export const SESSION_FIELDS = {
  /** Additional scopes to ask the provider for. */
  scopes: v.optional(v.array(v.pipe(v.string(), v.regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be a scope token (no spaces or quotes)'))), []),
  /** Extra query parameters for the provider's authorization URL (e.g. `hd`, `prompt`). */
  authz_url_params: v.optional(v.record(v.string(), v.string()), {}),
  /** A session ends this long after sign-in, whatever the activity; default 24h. */
  max_session_duration: v.optional(SESSION_DURATION, '24h'),
  /** Ask the provider for the user's profile again this often with the stored access token; a refusal ends the session. Off by default. */
  userinfo_refresh_interval: v.optional(SESSION_DURATION),
  /** Let CORS preflight requests (OPTIONS with Origin and Access-Control-Request-Method) through without a session. Default false. */
  allow_cors_preflight: v.optional(v.boolean(), false),
}

/** The session settings both actions pass on to `identityAction`, from their config. */
export function sessionSettings(config: { authz_url_params: Record<string, string>; max_session_duration: string; userinfo_refresh_interval?: string | undefined; allow_cors_preflight: boolean }, idle: string) {
  return {
    authzParams: config.authz_url_params,
    maxSessionMs: parseDuration(config.max_session_duration)!,
    idleMs: parseDuration(idle)!,
    userinfoRefreshMs: config.userinfo_refresh_interval === undefined ? 0 : parseDuration(config.userinfo_refresh_interval)!,
    allowCorsPreflight: config.allow_cors_preflight,
  }
}

/** Scopes the action always asks for, then the user's additional ones, without repeats. */
export function scopeList(base: readonly string[], extra: readonly string[]): string[] {
  return [...new Set([...base, ...extra])]
}

/** An identity-provider URL: https://, or http:// on a loopback host only (a local IdP, tests). */
export function providerUrl(text: string, field: string): URL {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new WarrenError(CODES.IDENTITY_CONFIG_INVALID, `${field} "${text}" is not a URL`)
  }
  if (url.protocol === 'https:') return url
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return url
  throw new WarrenError(CODES.IDENTITY_CONFIG_INVALID, `${field} must be an https:// URL (http:// only for a provider on a loopback address), not "${text}"`)
}
