/**
 * Where each `oauth` provider logs users in. Providers that speak OpenID Connect are found by
 * discovery from their issuer (their id_token is validated); the others are plain OAuth 2.0 with
 * fixed URLs, and the user comes from their profile API with the access token.
 */
export type ProviderPreset =
  | { kind: 'oidc'; issuer: string; scopes: readonly string[] }
  | { kind: 'oauth2'; authorization: string; token: string; userinfo: string; scopes: readonly string[]; clientAuth: 'post' | 'basic' }

export const PROVIDERS = {
  google: { kind: 'oidc', issuer: 'https://accounts.google.com', scopes: ['openid', 'email', 'profile'] },
  gitlab: { kind: 'oidc', issuer: 'https://gitlab.com', scopes: ['openid', 'email', 'profile'] },
  linkedin: { kind: 'oidc', issuer: 'https://www.linkedin.com/oauth', scopes: ['openid', 'email', 'profile'] },
  twitch: { kind: 'oidc', issuer: 'https://id.twitch.tv/oauth2', scopes: ['openid', 'user:read:email'] },
  github: {
    kind: 'oauth2',
    authorization: 'https://github.com/login/oauth/authorize',
    token: 'https://github.com/login/oauth/access_token',
    userinfo: 'https://api.github.com/user',
    scopes: ['read:user', 'user:email'],
    clientAuth: 'post',
  },
  // Microsoft's multi-tenant issuer is a template ({tenantid}), which no id_token check can match:
  // it is used as plain OAuth 2.0 with the Graph profile.
  microsoft: {
    kind: 'oauth2',
    authorization: 'https://login.microsoftonline.com/common/oauth2/v2.0/authorize',
    token: 'https://login.microsoftonline.com/common/oauth2/v2.0/token',
    userinfo: 'https://graph.microsoft.com/v1.0/me',
    scopes: ['User.Read'],
    clientAuth: 'post',
  },
  amazon: {
    kind: 'oauth2',
    authorization: 'https://www.amazon.com/ap/oa',
    token: 'https://api.amazon.com/auth/o2/token',
    userinfo: 'https://api.amazon.com/user/profile',
    scopes: ['profile'],
    clientAuth: 'post',
  },
  facebook: {
    kind: 'oauth2',
    authorization: 'https://www.facebook.com/v19.0/dialog/oauth',
    token: 'https://graph.facebook.com/v19.0/oauth/access_token',
    userinfo: 'https://graph.facebook.com/me?fields=id,name,email',
    scopes: ['email', 'public_profile'],
    clientAuth: 'post',
  },
} as const satisfies Record<string, ProviderPreset>

export type ProviderName = keyof typeof PROVIDERS

export const PROVIDER_NAMES = Object.keys(PROVIDERS) as ProviderName[]

/**
 * ngrok's identity fields from whatever the provider returned: OIDC claims (`sub`, `email`, `name`)
 * or a profile API (`id`/`user_id`, `mail`, `displayName`, `login`).
 */
export function identityOf(claims: Record<string, unknown>): { provider_user_id: string; email: string; name: string } {
  const text = (...keys: string[]) => {
    for (const k of keys) {
      const value = claims[k]
      if (typeof value === 'string' && value !== '') return value
      if (typeof value === 'number') return String(value)
    }
    return ''
  }
  return {
    provider_user_id: text('sub', 'id', 'user_id'),
    email: text('email', 'mail'),
    name: text('name', 'displayName', 'login', 'preferred_username'),
  }
}
