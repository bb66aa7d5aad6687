import type { ASTNode, Environment } from '@marcbachmann/cel-js'
import { NO_COOKIE } from '../../cookies.ts'

/*
 * ngrok's request/response macros take the exchange implicitly (`getReqHeader('X-Api-Key')`). They
 * are cel-js macros: the type check makes sure the argument is a string, and evaluation reads the
 * `req`/`res` variable of the running evaluation, so they see exactly what `req.headers` etc. see.
 */

interface MacroContext {
  getValue(name: string): unknown
}
interface Checker {
  check(node: ASTNode, ctx: MacroContext): { kind: string; name: string }
  getType(name: string): unknown
  createError(code: string, message: string, node: ASTNode): Error
}
interface Evaluator {
  run(node: ASTNode, ctx: MacroContext): unknown
}
interface ImplicitMacro {
  arg: ASTNode
}

/** Reads a field of a plain object or of a cel-js typed value (a Map). */
function field(obj: unknown, key: string): unknown {
  if (obj instanceof Map) return obj.get(key)
  return obj !== null && typeof obj === 'object' ? (obj as Record<string, unknown>)[key] : undefined
}

function entry(map: unknown, key: string): unknown {
  if (map instanceof Map) return map.get(key)
  return map !== null && typeof map === 'object' && Object.hasOwn(map, key) ? (map as Record<string, unknown>)[key] : undefined
}

type Reader = (ctx: MacroContext, key: string) => unknown

function implicit(name: string, returns: string, read: Reader) {
  return function expand({ args }: { args: ASTNode[] }) {
    return {
      arg: args[0]!,
      async: false,
      typeCheck(chk: Checker, m: ImplicitMacro, ctx: MacroContext) {
        const type = chk.check(m.arg, ctx)
        if (type.kind !== 'dyn' && type.name !== 'string')
          throw chk.createError('no_matching_overload', `${name}() takes a string, got ${type.name}`, m.arg)
        return chk.getType(returns)
      },
      evaluate(ev: Evaluator, m: ImplicitMacro, ctx: MacroContext) {
        const key = ev.run(m.arg, ctx)
        if (typeof key !== 'string') throw new TypeError(`${name}() takes a string, got ${typeof key}`)
        return read(ctx, key)
      },
    }
  }
}

const headers = (variable: 'req' | 'res') => (ctx: MacroContext) => field(ctx.getValue(variable), 'headers')
const cookies = (variable: 'req' | 'res') => (ctx: MacroContext) => field(ctx.getValue(variable), 'cookies')
const queryParams = (ctx: MacroContext) => field(field(ctx.getValue('req'), 'url'), 'query_params')

function headerList(source: (ctx: MacroContext) => unknown): Reader {
  // Header names are case-insensitive; the maps hold them lower-cased (ngrok asks for canonical case).
  return (ctx, key) => entry(source(ctx), key.toLowerCase()) ?? []
}
function hasHeader(source: (ctx: MacroContext) => unknown): Reader {
  return (ctx, key) => entry(source(ctx), key.toLowerCase()) !== undefined
}
function firstCookie(source: (ctx: MacroContext) => unknown): Reader {
  return (ctx, key) => (entry(source(ctx), key) as unknown[] | undefined)?.[0] ?? NO_COOKIE
}
function hasCookie(source: (ctx: MacroContext) => unknown): Reader {
  return (ctx, key) => entry(source(ctx), key) !== undefined
}

/** Request macros (on_http_request and on_http_response): headers, query parameters, cookies. */
export function registerRequestMacros(env: Environment): void {
  env.registerFunction('getReqHeader(ast): list<string>', implicit('getReqHeader', 'list<string>', headerList(headers('req'))))
  env.registerFunction('hasReqHeader(ast): bool', implicit('hasReqHeader', 'bool', hasHeader(headers('req'))))
  env.registerFunction('getQueryParam(ast): list<string>', implicit('getQueryParam', 'list<string>', (ctx, key) => entry(queryParams(ctx), key) ?? []))
  env.registerFunction('hasQueryParam(ast): bool', implicit('hasQueryParam', 'bool', (ctx, key) => entry(queryParams(ctx), key) !== undefined))
  env.registerFunction('getReqCookie(ast): Cookie', implicit('getReqCookie', 'Cookie', firstCookie(cookies('req'))))
  env.registerFunction('hasReqCookie(ast): bool', implicit('hasReqCookie', 'bool', hasCookie(cookies('req'))))
}

/** Response macros (on_http_response only): headers and cookies of the upstream's answer. */
export function registerResponseMacros(env: Environment): void {
  env.registerFunction('getResHeader(ast): list<string>', implicit('getResHeader', 'list<string>', headerList(headers('res'))))
  env.registerFunction('hasResHeader(ast): bool', implicit('hasResHeader', 'bool', hasHeader(headers('res'))))
  env.registerFunction('getResCookie(ast): Cookie', implicit('getResCookie', 'Cookie', firstCookie(cookies('res'))))
  env.registerFunction('hasResCookie(ast): bool', implicit('hasResCookie', 'bool', hasCookie(cookies('res'))))
}
