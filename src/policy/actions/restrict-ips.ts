import * as v from 'valibot'
import { CODES } from '../../lib/errors.ts'
import { cidrContains, parseCidr, parseIp, type Cidr } from '../../lib/ip.ts'
import { errorResponse } from '../../proxy/errors.ts'
import { celContext } from '../context.ts'
import { CONTINUE, defineAction, type BuildEnv, type HttpExchange, type Outcome } from '../types.ts'

type CidrList = (ex: HttpExchange, context: () => Record<string, unknown>) => { cidrs: Cidr[]; error?: string }

function compileList(list: readonly string[], env: BuildEnv, field: string): { list: CidrList; count: number } {
  const fixed: Cidr[] = []
  const dynamic: ReturnType<BuildEnv['template']>[] = []
  list.forEach((text, i) => {
    const tpl = env.template(text, ['config', field, i])
    if (!tpl.constant) return void dynamic.push(tpl)
    try {
      fixed.push(parseCidr(text.trim()))
    } catch (err) {
      throw new Error(`${field}[${i}]: ${(err as Error).message}`)
    }
  })
  if (dynamic.length === 0) return { list: () => ({ cidrs: fixed }), count: fixed.length }
  return {
    count: list.length,
    list(_ex, context) {
      const cidrs = [...fixed]
      for (const tpl of dynamic) {
        // A template may yield several ranges separated by commas or spaces.
        for (const text of tpl.render(context).split(/[\s,]+/).filter(Boolean)) {
          try {
            cidrs.push(parseCidr(text))
          } catch (err) {
            return { cidrs, error: `${field}: ${(err as Error).message}` }
          }
        }
      }
      return { cidrs }
    },
  }
}

/**
 * Allows a connection only when its client address (the TCP peer, never X-Forwarded-For) is in
 * one of the `allow` ranges and in none of the `deny` ranges. IPv4 and IPv6. Refused: 403 in the HTTP
 * phases, a closed connection in on_tcp_connect.
 */
export const restrictIps = defineAction({
  type: 'restrict-ips',
  phases: ['on_tcp_connect', 'on_http_request', 'on_http_response'],
  terminating: false,
  readOnly: true,
  config: v.strictObject({
    /** false: never refuse, only set the result variables (dry run). Default true. */
    enforce: v.optional(v.boolean(), true),
    /** CIDRs allowed (`10.0.0.0/8`, `2001:db8::/32`; a bare address is one host); `${…}` allowed. */
    allow: v.optional(v.array(v.string()), []),
    /** CIDRs denied, checked before `allow`; `${…}` allowed. Needs at least one `allow` entry too. */
    deny: v.optional(v.array(v.string()), []),
    /** ngrok IP Policy ids; not available in warren (list the CIDRs instead). */
    ip_policies: v.optional(v.array(v.string())),
  }),
  build(config, env) {
    if (config.ip_policies?.length) throw new Error('ip_policies refer to ngrok-hosted IP policies, which warren does not have; list the CIDRs in allow/deny')
    const allow = compileList(config.allow, env, 'allow')
    const deny = compileList(config.deny, env, 'deny')
    if (allow.count === 0)
      throw new Error(
        deny.count === 0
          ? 'needs at least one CIDR in allow or deny'
          : 'with only deny entries every address would be refused; add allow: ["0.0.0.0/0", "::/0"] to accept everything else',
      )
    const enforce = config.enforce
    const tcp = env.phase === 'on_tcp_connect'
    function refuse(ex: HttpExchange): Outcome {
      if (!enforce) return CONTINUE
      if (tcp) return { kind: 'close' }
      return { kind: 'respond', response: errorResponse(403, CODES.IP_RESTRICTED, 'Your IP address is not allowed to reach this endpoint.', ex.headers.get('accept')) }
    }
    return function restrictIps(ex) {
      const context = () => celContext(ex)
      const ip = parseIp(ex.conn.clientIp)
      const denied = deny.list(ex, context)
      const allowed = allow.list(ex, context)
      const error = denied.error ?? allowed.error ?? (ip ? undefined : `the client address "${ex.conn.clientIp}" is not an IP address`)
      if (error || !ip) {
        // Fail closed: a list that cannot be read must not let everyone in.
        ex.actions['restrict_ips'] = { action: 'deny', matched_cidr: '', error: { code: 'invalid_cidr', message: error ?? '' } }
        return refuse(ex)
      }
      const hitDeny = denied.cidrs.find((c) => cidrContains(c, ip))
      const hitAllow = hitDeny ? undefined : allowed.cidrs.find((c) => cidrContains(c, ip))
      const ok = !hitDeny && hitAllow !== undefined
      ex.actions['restrict_ips'] = { action: ok ? 'allow' : 'deny', matched_cidr: (hitDeny ?? hitAllow)?.text ?? '', error: { code: '', message: '' } }
      return ok ? CONTINUE : refuse(ex)
    }
  },
})
