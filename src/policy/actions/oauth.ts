import * as v from 'valibot'
import { CODES, WarrenError } from '../../lib/errors.ts'
import { Secret } from '../../lib/secret.ts'
import { identityAction, type ServerSource } from '../identity/flow.ts'
import { AUTH_ID, providerUrl, scopeList, SESSION_DURATION, SESSION_FIELDS, sessionSettings } from '../identity/fields.ts'
import { PROVIDER_NAMES, PROVIDERS } from '../identity/providers.ts'
import { defineAction } from '../types.ts'

/**
 * Signs users in with a well-known provider (google, github, …) using the operator's own OAuth app.
 * The identity is `actions.ngrok.oauth.*` for the rules after it.
 */
export const oauthAction = defineAction({
  type: 'oauth',
  phases: ['on_http_request'],
  terminating: false,
  config: v.strictObject({
    /** One of google, github, gitlab, microsoft, linkedin, twitch, amazon, facebook. */
    provider: v.picklist(PROVIDER_NAMES, `must be one of ${PROVIDER_NAMES.join(', ')}`),
    /** Your OAuth app's client id at the provider (required: a self-hosted edge has no shared app). */
    client_id: v.optional(v.string()),
    /** Your OAuth app's client secret (required with client_id). */
    client_secret: v.optional(v.string()),
    /** Names this login: the session cookie and the `auth_id` of /ngrok/login and /ngrok/logout. Default: the provider's name. */
    auth_id: v.optional(AUTH_ID),
    /** A session ends after this long without a request; default 4h. */
    idle_session_timeout: v.optional(SESSION_DURATION, '4h'),
    /** warren extension: the provider's OpenID Connect issuer instead of the built-in one (a self-hosted GitLab, a test IdP). */
    issuer_url: v.optional(v.string()),
    /** warren extension: the provider's OAuth 2.0 URLs instead of the built-in ones (GitHub Enterprise, …). */
    endpoints: v.optional(
      v.strictObject({
        /** Where the browser signs in. */
        authorization_url: v.string(),
        /** Where the edge trades the code for a token. */
        token_url: v.string(),
        /** The profile API called with the access token (JSON with id/sub, email, name). */
        userinfo_url: v.string(),
      }),
    ),
    ...SESSION_FIELDS,
  }),
  build(config, env) {
    if (!config.client_id || !config.client_secret) {
      throw new WarrenError(
        CODES.OAUTH_NO_CLIENT,
        `provider "${config.provider}" needs client_id and client_secret: register an OAuth app with ${config.provider} (redirect URL https://<your endpoint>/ngrok/callback); a self-hosted edge has no shared ngrok app to fall back on`,
      )
    }
    if (config.issuer_url !== undefined && config.endpoints !== undefined) throw new WarrenError(CODES.IDENTITY_CONFIG_INVALID, 'set issuer_url or endpoints, not both')
    const preset = PROVIDERS[config.provider]
    let server: ServerSource
    let oidc: boolean
    if (config.endpoints) {
      const e = config.endpoints
      server = { kind: 'static', authorization: providerUrl(e.authorization_url, 'endpoints.authorization_url'), token: providerUrl(e.token_url, 'endpoints.token_url'), userinfo: providerUrl(e.userinfo_url, 'endpoints.userinfo_url') }
      oidc = false
    } else if (config.issuer_url !== undefined) {
      server = { kind: 'discover', issuer: providerUrl(config.issuer_url, 'issuer_url') }
      oidc = true
    } else if (preset.kind === 'oidc') {
      server = { kind: 'discover', issuer: new URL(preset.issuer) }
      oidc = true
    } else {
      server = { kind: 'static', authorization: new URL(preset.authorization), token: new URL(preset.token), userinfo: new URL(preset.userinfo) }
      oidc = false
    }
    return identityAction({
      result: 'oauth',
      authId: config.auth_id ?? config.provider,
      server,
      clientId: config.client_id,
      clientSecret: new Secret(config.client_secret),
      clientAuth: oidc ? 'auto' : 'post',
      scopes: scopeList(oidc && preset.kind !== 'oidc' ? ['openid', 'profile', 'email'] : preset.scopes, config.scopes),
      ...sessionSettings(config, config.idle_session_timeout),
      key: env.sessionKey,
    })
  },
})
