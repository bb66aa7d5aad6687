import * as v from 'valibot'
import { Secret } from '../../lib/secret.ts'
import { identityAction } from '../identity/flow.ts'
import { AUTH_ID, providerUrl, scopeList, SESSION_DURATION, SESSION_FIELDS, sessionSettings } from '../identity/fields.ts'
import { defineAction } from '../types.ts'

/**
 * Signs users in with any OpenID Connect provider (authorization code + PKCE + nonce, found by
 * discovery) before the request goes on. The identity is `actions.ngrok.openid_connect.*` for the
 * rules after it (allow lists are `deny` rules with an expression on it).
 */
export const openidConnect = defineAction({
  type: 'openid-connect',
  phases: ['on_http_request'],
  terminating: false,
  config: v.strictObject({
    /** The provider's issuer; its discovery document is at `<issuer_url>/.well-known/openid-configuration`. */
    issuer_url: v.string(),
    /** The app's client id at the provider. */
    client_id: v.pipe(v.string(), v.minLength(1, 'must not be empty')),
    /** The app's client secret at the provider. */
    client_secret: v.pipe(v.string(), v.minLength(1, 'must not be empty')),
    /** Names this login: the session cookie and the `auth_id` of /ngrok/login and /ngrok/logout. Default "oidc". */
    auth_id: v.optional(AUTH_ID, 'oidc'),
    /** A session ends after this long without a request; default 4h. */
    idle_session_duration: v.optional(SESSION_DURATION, '4h'),
    ...SESSION_FIELDS,
  }),
  build(config, env) {
    return identityAction({
      result: 'openid_connect',
      authId: config.auth_id,
      server: { kind: 'discover', issuer: providerUrl(config.issuer_url, 'issuer_url') },
      clientId: config.client_id,
      clientSecret: new Secret(config.client_secret),
      clientAuth: 'auto',
      scopes: scopeList(['openid', 'profile', 'email'], config.scopes),
      ...sessionSettings(config, config.idle_session_duration),
      key: env.sessionKey,
    })
  },
})
