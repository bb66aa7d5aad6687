/**
 * Signs webhook deliveries the way each provider does (written from the providers' documentation,
 * independently of src/policy/webhook-providers.ts), for the unit and e2e tests of verify-webhook.
 */
import { createHash, createHmac, generateKeyPairSync, sign } from 'node:crypto'

export interface Delivery {
  url: string
  body: string
  contentType: string
  now: number
}

export interface SignerCase {
  provider: string
  /** The secret to configure in the policy. */
  secret: string
  /** Extra config for the action (the `hmac` settings). */
  extra?: Record<string, unknown>
  sign(d: Delivery): Record<string, string>
  /** True when the provider puts a timestamp under its signature (a stale one must fail). */
  timestamped: boolean
}

const hmac = (alg: string, key: string | Buffer, ...parts: string[]) => {
  const h = createHmac(alg, key)
  for (const p of parts) h.update(p)
  return h.digest()
}

const svixKey = Buffer.from('0123456789abcdef0123456789abcdef')
const sendgridKeys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })

function twilioSigned(d: Delivery): string {
  let text = d.url
  if (d.contentType.startsWith('application/x-www-form-urlencoded')) {
    const params = [...new URLSearchParams(d.body)].sort((a, b) => (a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : a[0] < b[0] ? -1 : 1))
    for (const [k, v] of params) text += k + v
  }
  return text
}

export const SIGNERS: SignerCase[] = [
  { provider: 'github', secret: 'gh-secret-1', timestamped: false, sign: (d) => ({ 'x-hub-signature-256': 'sha256=' + hmac('sha256', 'gh-secret-1', d.body).toString('hex') }) },
  { provider: 'gitlab', secret: 'gl-token-1', timestamped: false, sign: () => ({ 'x-gitlab-token': 'gl-token-1' }) },
  { provider: 'intercom', secret: 'ic-secret', timestamped: false, sign: (d) => ({ 'x-hub-signature': 'sha1=' + hmac('sha1', 'ic-secret', d.body).toString('hex') }) },
  {
    provider: 'stripe',
    secret: 'whsec_stripe_test',
    timestamped: true,
    sign: (d) => ({ 'stripe-signature': `t=${d.now},v1=${hmac('sha256', 'whsec_stripe_test', `${d.now}.${d.body}`).toString('hex')},v0=ignored` }),
  },
  {
    provider: 'slack',
    secret: 'slack-signing',
    timestamped: true,
    sign: (d) => ({ 'x-slack-request-timestamp': String(d.now), 'x-slack-signature': 'v0=' + hmac('sha256', 'slack-signing', `v0:${d.now}:${d.body}`).toString('hex') }),
  },
  {
    provider: 'zoom',
    secret: 'zoom-secret',
    timestamped: true,
    sign: (d) => ({ 'x-zm-request-timestamp': String(d.now), 'x-zm-signature': 'v0=' + hmac('sha256', 'zoom-secret', `v0:${d.now}:${d.body}`).toString('hex') }),
  },
  { provider: 'twilio', secret: 'twilio-auth-token', timestamped: false, sign: (d) => ({ 'x-twilio-signature': hmac('sha1', 'twilio-auth-token', twilioSigned(d)).toString('base64') }) },
  { provider: 'shopify', secret: 'shpss_secret', timestamped: false, sign: (d) => ({ 'x-shopify-hmac-sha256': hmac('sha256', 'shpss_secret', d.body).toString('base64') }) },
  { provider: 'square', secret: 'sq-key', timestamped: false, sign: (d) => ({ 'x-square-hmacsha256-signature': hmac('sha256', 'sq-key', d.url + d.body).toString('base64') }) },
  { provider: 'typeform', secret: 'tf-secret', timestamped: false, sign: (d) => ({ 'typeform-signature': 'sha256=' + hmac('sha256', 'tf-secret', d.body).toString('base64') }) },
  { provider: 'sentry', secret: 'sentry-secret', timestamped: false, sign: (d) => ({ 'sentry-hook-signature': hmac('sha256', 'sentry-secret', d.body).toString('hex') }) },
  { provider: 'xero', secret: 'xero-key', timestamped: false, sign: (d) => ({ 'x-xero-signature': hmac('sha256', 'xero-key', d.body).toString('base64') }) },
  {
    provider: 'sendgrid',
    secret: sendgridKeys.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    timestamped: true,
    sign: (d) => ({
      'x-twilio-email-event-webhook-timestamp': String(d.now),
      'x-twilio-email-event-webhook-signature': sign('sha256', Buffer.from(`${d.now}${d.body}`), sendgridKeys.privateKey).toString('base64'),
    }),
  },
  ...(['svix', 'clerk'] as const).map((provider) => ({
    provider,
    secret: 'whsec_' + svixKey.toString('base64'),
    timestamped: true,
    sign: (d: Delivery) => ({ 'svix-id': 'msg_1', 'svix-timestamp': String(d.now), 'svix-signature': `v1,bm9wZQ== v1,${hmac('sha256', svixKey, `msg_1.${d.now}.${d.body}`).toString('base64')}` }),
  })),
  {
    provider: 'standard_webhooks',
    secret: 'whsec_' + svixKey.toString('base64'),
    timestamped: true,
    sign: (d) => ({ 'webhook-id': 'evt_9', 'webhook-timestamp': String(d.now), 'webhook-signature': `v1,${hmac('sha256', svixKey, `evt_9.${d.now}.${d.body}`).toString('base64')}` }),
  },
  {
    provider: 'hmac',
    secret: 'generic-secret',
    extra: { hmac: { header: 'X-Signature', algorithm: 'sha512', encoding: 'base64', prefix: 'sig=' } },
    timestamped: false,
    sign: (d) => ({ 'x-signature': 'sig=' + hmac('sha512', 'generic-secret', d.body).toString('base64') }),
  },
]

/** The same delivery with one byte of the body changed: its signature no longer fits. */
export function tamper(body: string): string {
  return body.replace(/.$/, (c) => (c === 'x' ? 'y' : 'x'))
}

/** sha256 of a body in hex, for Twilio's `bodySHA256` query parameter. */
export function bodySha256(body: string): string {
  return createHash('sha256').update(body).digest('hex')
}
