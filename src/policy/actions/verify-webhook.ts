import * as v from 'valibot'
import { CODES } from '../../lib/errors.ts'
import { log } from '../../lib/log.ts'
import { errorResponse } from '../../proxy/errors.ts'
import { celContext } from '../context.ts'
import { CONTINUE, defineAction, type HttpExchange } from '../types.ts'
import { genericHmac, PROVIDERS, type ProviderKey } from '../webhook-providers.ts'
import { BUFFER_LIMIT } from './request-body-find-replace.ts'
import { takeBody } from '../take-body.ts'

/**
 * Checks the signature a webhook provider put on a delivery (GitHub, Stripe, Slack, Twilio, Shopify,
 * SendGrid, Svix, … or a generic HMAC) against the configured secret, in constant time. A delivery
 * that fails gets 403, unless `enforce` is false (the result variables tell what would have happened).
 * The body the upstream gets is unchanged.
 */
export const verifyWebhook = defineAction({
  type: 'verify-webhook',
  phases: ['on_http_request'],
  terminating: false,
  config: v.pipe(
    v.strictObject({
      /** Who signs the deliveries: one of ngrok's provider names that warren checks (see docs/actions.md), or `hmac`. */
      provider: v.picklist(['hmac', ...Object.keys(PROVIDERS)] as [string, ...string[]], 'must be a supported provider (see docs/actions.md)'),
      /** The signing secret the provider gave you (SendGrid: its verification public key); `${…}` allowed. Never logged. */
      secret: v.pipe(v.string(), v.minLength(1, 'must not be empty')),
      /** false: never reject, only set the result variables (dry run). Default true. */
      enforce: v.optional(v.boolean(), true),
      /** Provider `hmac` only (warren's own): where the signature is and how it is made. */
      hmac: v.optional(
        v.strictObject({
          /** Request header that carries the signature. */
          header: v.pipe(v.string(), v.regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be a header name')),
          /** HMAC hash; default sha256. */
          algorithm: v.optional(v.picklist(['sha1', 'sha256', 'sha384', 'sha512']), 'sha256'),
          /** How the signature is written; default hex. */
          encoding: v.optional(v.picklist(['hex', 'base64']), 'hex'),
          /** Text before the signature in the header (e.g. `sha256=`); default none. */
          prefix: v.optional(v.string(), ''),
        }),
      ),
    }),
    v.check((c) => (c.provider === 'hmac') === (c.hmac !== undefined), 'provider "hmac" needs the `hmac` settings, and only it takes them'),
  ),
  build(config, env) {
    const provider = config.provider === 'hmac' ? genericHmac(config.hmac!) : PROVIDERS[config.provider]!
    const secret = env.template(config.secret, ['config', 'secret'])
    // A literal secret is turned into its key once; a templated one per request, keeping the last.
    let cached: { secret: string; key: ProviderKey } | undefined = secret.constant ? { secret: config.secret, key: provider.key(config.secret) } : undefined
    const enforce = config.enforce

    function keyFor(ex: HttpExchange): ProviderKey | string {
      if (secret.constant) return cached!.key
      const text = secret.render(() => celContext(ex))
      if (cached?.secret !== text) {
        try {
          cached = { secret: text, key: provider.key(text) }
        } catch (err) {
          return `the secret is not usable: ${(err as Error).message}`
        }
      }
      return cached.key
    }

    return async function verifyWebhook(ex) {
      const taken = await takeBody(ex.body)
      ex.body = taken.body
      const key = keyFor(ex)
      let failure: string | undefined
      if (typeof key === 'string') failure = key
      else if (!taken.complete) failure = `the body is larger than ${BUFFER_LIMIT} bytes`
      else failure = provider.check({ headers: ex.headers, body: taken.bytes, url: ex.url, now: Math.floor(Date.now() / 1000) }, key)
      const verified = failure === undefined
      ex.actions['verify_webhook'] = {
        verified,
        error: verified ? { code: '', message: '' } : { code: CODES.WEBHOOK_UNVERIFIED, message: failure },
      }
      if (verified) return CONTINUE
      log.debug('verify-webhook failed', { provider: config.provider, reason: failure })
      if (!enforce) return CONTINUE
      return { kind: 'respond', response: errorResponse(403, CODES.WEBHOOK_UNVERIFIED, 'The webhook signature could not be verified.', ex.headers.get('accept')) }
    }
  },
})
