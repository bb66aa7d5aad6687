import { createHash, createHmac, createPublicKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto'

/** Signed deliveries older or newer than this are refused (the providers' own libraries use 5 minutes). */
export const TIMESTAMP_TOLERANCE_S = 300

/** What a provider check sees of one request. */
export interface WebhookRequest {
  headers: Headers
  body: Buffer
  /** The URL the provider called, as the client asked for it at the edge (Twilio and Square sign it). */
  url: URL
  /** Unix seconds now. */
  now: number
}

/** The generic `hmac` provider's settings (warren's own provider). */
export interface HmacSettings {
  header: string
  algorithm: 'sha1' | 'sha256' | 'sha384' | 'sha512'
  encoding: 'hex' | 'base64'
  prefix: string
}

/** Why a delivery is not verified; `undefined` means it is. */
export type Failure = string | undefined

type Check = (req: WebhookRequest, key: ProviderKey) => Failure

/**
 * The secret in the form a provider needs: HMAC key bytes, a public key for asymmetric ones, or the
 * SHA-256 of a shared token (compared against the presented token's, so lengths never leak).
 */
export type ProviderKey = { hmac: Buffer } | { publicKey: KeyObject } | { tokenDigest: Buffer }

interface Provider {
  /** Turns the configured secret into the key the check uses; throws with a message when it cannot. */
  key(secret: string): ProviderKey
  check: Check
}

function hmacKey(secret: string): ProviderKey {
  return { hmac: Buffer.from(secret, 'utf8') }
}

function mac(algorithm: string, key: ProviderKey, ...parts: (string | Buffer)[]): Buffer {
  if (!('hmac' in key)) throw new TypeError('an HMAC provider got a public key')
  const h = createHmac(algorithm, key.hmac)
  for (const p of parts) h.update(p)
  return h.digest()
}

/** Constant-time comparison of a presented signature (text in `encoding`) with the expected bytes. */
function matches(expected: Buffer, presented: string, encoding: 'hex' | 'base64'): boolean {
  const text = presented.trim()
  const ok = encoding === 'hex' ? /^[0-9a-f]+$/i.test(text) : /^[A-Za-z0-9+/_-]+={0,2}$/.test(text)
  const got = Buffer.from(text, encoding === 'hex' ? 'hex' : 'base64')
  // Lengths are public (every valid signature has the same); the bytes are compared in constant time.
  return ok && got.length === expected.length && timingSafeEqual(got, expected)
}

function stale(timestamp: string | null, now: number): Failure {
  if (timestamp === null || !/^\d{1,12}$/.test(timestamp.trim())) return 'the timestamp is missing or not a number'
  const skew = Math.abs(now - Number(timestamp))
  return skew > TIMESTAMP_TOLERANCE_S ? `the timestamp is ${skew}s away from now (tolerance ${TIMESTAMP_TOLERANCE_S}s)` : undefined
}

function header(req: WebhookRequest, name: string): string | null {
  return req.headers.get(name)
}

const MISSING = (name: string) => `the ${name} header is missing`
const MISMATCH = 'the signature does not match'

/** `prefix` + HMAC(body) in one header: GitHub, Shopify, Typeform, Sentry, Intercom and warren's `hmac`. */
function bodyHmac(name: string, algorithm: string, encoding: 'hex' | 'base64', prefix = ''): Provider {
  return {
    key: hmacKey,
    check(req, key) {
      const given = header(req, name)
      if (given === null) return MISSING(name)
      if (!given.startsWith(prefix)) return `the ${name} header does not start with "${prefix}"`
      return matches(mac(algorithm, key, req.body), given.slice(prefix.length), encoding) ? undefined : MISMATCH
    },
  }
}

/** Slack and Zoom: `v0=` + hex HMAC-SHA256 of `v0:<timestamp>:<body>`. */
function v0Hmac(signatureHeader: string, timestampHeader: string): Provider {
  return {
    key: hmacKey,
    check(req, key) {
      const given = header(req, signatureHeader)
      if (given === null) return MISSING(signatureHeader)
      const ts = header(req, timestampHeader)
      const old = stale(ts, req.now)
      if (old) return old
      if (!given.startsWith('v0=')) return `the ${signatureHeader} header does not start with "v0="`
      return matches(mac('sha256', key, `v0:${ts!.trim()}:`, req.body), given.slice(3), 'hex') ? undefined : MISMATCH
    },
  }
}

/** Stripe: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=…]`, HMAC-SHA256 of `<ts>.<body>`. */
const stripe: Provider = {
  key: hmacKey,
  check(req, key) {
    const given = header(req, 'stripe-signature')
    if (given === null) return MISSING('stripe-signature')
    const parts = given.split(',').map((p) => p.trim().split('=', 2) as [string, string | undefined])
    const ts = parts.find(([k]) => k === 't')?.[1] ?? null
    const old = stale(ts, req.now)
    if (old) return old
    const expected = mac('sha256', key, `${ts}.`, req.body)
    let ok = false
    for (const [k, v] of parts) if (k === 'v1' && v !== undefined) ok = matches(expected, v, 'hex') || ok
    return ok ? undefined : MISMATCH
  },
}

/**
 * Svix and Standard Webhooks (Clerk, Resend, …): `<id>.<timestamp>.<body>` signed with the base64
 * key after `whsec_`; the signature header lists `v1,<base64>` entries separated by spaces.
 */
function svixLike(prefix: 'svix' | 'webhook'): Provider {
  return {
    key(secret) {
      const raw = secret.startsWith('whsec_') ? secret.slice(6) : secret
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(raw)) throw new Error('the secret must be "whsec_" followed by base64')
      return { hmac: Buffer.from(raw, 'base64') }
    },
    check(req, key) {
      const id = header(req, `${prefix}-id`)
      const given = header(req, `${prefix}-signature`)
      if (id === null) return MISSING(`${prefix}-id`)
      if (given === null) return MISSING(`${prefix}-signature`)
      const ts = header(req, `${prefix}-timestamp`)
      const old = stale(ts, req.now)
      if (old) return old
      const expected = mac('sha256', key, `${id}.${ts!.trim()}.`, req.body)
      let ok = false
      for (const entry of given.split(' ')) {
        const [version, sig] = entry.split(',', 2)
        if (version === 'v1' && sig) ok = matches(expected, sig, 'base64') || ok
      }
      return ok ? undefined : MISMATCH
    },
  }
}

/**
 * Twilio: base64 HMAC-SHA1 of the full URL, then (for form posts) each parameter name and value in
 * name order. JSON posts sign the URL only and carry `bodySHA256` in its query, checked here too.
 */
const twilio: Provider = {
  key: hmacKey,
  check(req, key) {
    const given = header(req, 'x-twilio-signature')
    if (given === null) return MISSING('x-twilio-signature')
    let signed = req.url.href
    if (/^application\/x-www-form-urlencoded\b/i.test(header(req, 'content-type') ?? '')) {
      const params = [...new URLSearchParams(req.body.toString('utf8'))]
      params.sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
      signed += params.map(([k, v]) => k + v).join('')
    } else {
      const bodyHash = req.url.searchParams.get('bodySHA256')
      if (bodyHash !== null && !matches(createHash('sha256').update(req.body).digest(), bodyHash, 'hex')) return 'the body does not match bodySHA256'
    }
    return matches(mac('sha1', key, signed), given, 'base64') ? undefined : MISMATCH
  },
}

/** Square: base64 HMAC-SHA256 of the notification URL followed by the body. */
const square: Provider = {
  key: hmacKey,
  check(req, key) {
    const given = header(req, 'x-square-hmacsha256-signature')
    if (given === null) return MISSING('x-square-hmacsha256-signature')
    return matches(mac('sha256', key, req.url.href, req.body), given, 'base64') ? undefined : MISMATCH
  },
}

/** GitLab sends the secret itself as a token (no signature); compared in constant time. */
const gitlab: Provider = {
  key: (secret) => ({ tokenDigest: createHash('sha256').update(secret, 'utf8').digest() }),
  check(req, key) {
    const given = header(req, 'x-gitlab-token')
    if (given === null) return MISSING('x-gitlab-token')
    if (!('tokenDigest' in key)) throw new TypeError('gitlab got a key that is not a token digest')
    return timingSafeEqual(createHash('sha256').update(given, 'utf8').digest(), key.tokenDigest) ? undefined : 'the token does not match'
  },
}

/**
 * SendGrid's Event Webhook: ECDSA P-256 over `<timestamp><body>`; the secret is the verification
 * key SendGrid shows (base64 DER public key, or PEM). The signature is checked with node:crypto.
 */
const sendgrid: Provider = {
  key(secret) {
    try {
      const text = secret.trim()
      const key = text.startsWith('-----BEGIN') ? createPublicKey(text) : createPublicKey({ key: Buffer.from(text, 'base64'), format: 'der', type: 'spki' })
      if (key.asymmetricKeyType !== 'ec') throw new Error('not an EC key')
      return { publicKey: key }
    } catch {
      throw new Error('the secret must be SendGrid\'s verification key (a base64 or PEM ECDSA public key)')
    }
  },
  check(req, key) {
    const sigName = 'x-twilio-email-event-webhook-signature'
    const tsName = 'x-twilio-email-event-webhook-timestamp'
    const given = header(req, sigName)
    const ts = header(req, tsName)
    if (given === null) return MISSING(sigName)
    if (ts === null) return MISSING(tsName)
    const old = stale(ts, req.now)
    if (old) return old
    if (!('publicKey' in key)) throw new TypeError('sendgrid got an HMAC key')
    let ok = false
    try {
      ok = verify('sha256', Buffer.concat([Buffer.from(ts.trim()), req.body]), { key: key.publicKey, dsaEncoding: 'der' }, Buffer.from(given.trim(), 'base64'))
    } catch {
      ok = false
    }
    return ok ? undefined : MISMATCH
  },
}

/** The `hmac` provider: header, algorithm, encoding and prefix come from the action's `hmac` config. */
export function genericHmac(settings: HmacSettings): Provider {
  return bodyHmac(settings.header.toLowerCase(), settings.algorithm, settings.encoding, settings.prefix)
}

/** Providers by the name ngrok uses in `provider:`; `hmac` is warren's own (see genericHmac). */
export const PROVIDERS: Readonly<Record<string, Provider>> = {
  github: bodyHmac('x-hub-signature-256', 'sha256', 'hex', 'sha256='),
  gitlab,
  intercom: bodyHmac('x-hub-signature', 'sha1', 'hex', 'sha1='),
  sendgrid,
  sentry: bodyHmac('sentry-hook-signature', 'sha256', 'hex'),
  shopify: bodyHmac('x-shopify-hmac-sha256', 'sha256', 'base64'),
  slack: v0Hmac('x-slack-signature', 'x-slack-request-timestamp'),
  square,
  standard_webhooks: svixLike('webhook'),
  stripe,
  svix: svixLike('svix'),
  clerk: svixLike('svix'),
  twilio,
  typeform: bodyHmac('typeform-signature', 'sha256', 'base64', 'sha256='),
  xero: bodyHmac('x-xero-signature', 'sha256', 'base64'),
  zoom: v0Hmac('x-zm-signature', 'x-zm-request-timestamp'),
}
