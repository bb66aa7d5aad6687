import { createHash, timingSafeEqual } from 'node:crypto'
import * as v from 'valibot'
import { CODES } from '../../lib/errors.ts'
import { errorResponse } from '../../proxy/errors.ts'
import { celContext } from '../context.ts'
import { CONTINUE, defineAction } from '../types.ts'

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}

/** The `user:password` a Basic Authorization header carries, or undefined when there is none. */
function presented(header: string | null): string | undefined {
  const m = /^Basic[ \t]+([A-Za-z0-9+/=_-]+)[ \t]*$/i.exec(header ?? '')
  if (!m) return undefined
  const text = Buffer.from(m[1]!, 'base64').toString('utf8')
  return text.includes(':') ? text : undefined
}

function checkLiteral(credential: string): string | undefined {
  const colon = credential.indexOf(':')
  if (colon === -1) return 'must be "username:password"'
  if (colon === 0) return 'the username must not be empty'
  const password = credential.slice(colon + 1)
  if (password.length < 8 || password.length > 128) return 'the password must be 8 to 128 characters long'
  return undefined
}

/**
 * HTTP Basic authentication (RFC 7617). A request whose `Authorization: Basic` credentials match
 * one of `credentials` continues; any other gets 401 with `WWW-Authenticate`, unless `enforce` is
 * false (dry run: the result variables tell what would have happened).
 */
export const basicAuth = defineAction({
  type: 'basic-auth',
  phases: ['on_http_request'],
  terminating: false,
  config: v.strictObject({
    /** Accepted `username:password` pairs (split at the first colon); `${…}` allowed. Literal passwords are 8-128 characters. */
    credentials: v.pipe(v.array(v.string()), v.minLength(1, 'needs at least one credential')),
    /** Realm shown by browsers in the login prompt (ASCII, at most 128 characters); default "ngrok" as in ngrok. */
    realm: v.optional(
      v.pipe(v.string(), v.maxLength(128), v.regex(/^[\x20-\x7e]*$/, 'must be printable ASCII'), v.check((r) => !r.includes('"'), 'must not contain double quotes')),
      'ngrok',
    ),
    /** false: never reject, only set the result variables (dry run). Default true. */
    enforce: v.optional(v.boolean(), true),
  }),
  build(config, env) {
    const fixed: Buffer[] = []
    const dynamic: ReturnType<typeof env.template>[] = []
    config.credentials.forEach((credential, i) => {
      const tpl = env.template(credential, ['config', 'credentials', i])
      if (!tpl.constant) return void dynamic.push(tpl)
      const problem = checkLiteral(credential)
      if (problem) throw new Error(`credentials[${i}] ${problem}`)
      fixed.push(digest(credential))
    })
    const challenge = `Basic realm="${config.realm}", charset="UTF-8"`
    const enforce = config.enforce
    return function basicAuth(ex) {
      const given = presented(ex.headers.get('authorization'))
      const got = digest(given ?? '')
      let expected = fixed
      if (dynamic.length) {
        const context = () => celContext(ex)
        expected = [...fixed]
        for (const tpl of dynamic) {
          const credential = tpl.render(context)
          // A rendered credential that breaks the literal rules never matches.
          if (!checkLiteral(credential)) expected.push(digest(credential))
        }
      }
      // Compare against every credential so the time taken does not tell which one (or none) matched.
      let authorized = false
      for (const want of expected) authorized = timingSafeEqual(want, got) || authorized
      authorized &&= given !== undefined
      ex.actions['basic_auth'] = {
        credentials: { presented: given !== undefined, username: given ? given.slice(0, given.indexOf(':')) : '', authorized },
      }
      if (authorized || !enforce) return CONTINUE
      const response = errorResponse(401, CODES.UNAUTHORIZED, 'Authentication required.', ex.headers.get('accept'))
      response.headers.set('www-authenticate', challenge)
      return { kind: 'respond', response }
    }
  },
})
