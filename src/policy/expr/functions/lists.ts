import type { ASTNode, Environment } from '@marcbachmann/cel-js'
import { Duration, UnsignedInt } from '@marcbachmann/cel-js/evaluator'
import { toPlain } from '../values.ts'
import { defineNamespace } from './namespace.ts'

type List = readonly unknown[]

function sizeOf(list: List): bigint {
  return BigInt(list.length)
}

function slice(list: List, start: bigint, end: bigint): unknown[] {
  if (start < 0n || end < 0n) throw new RangeError(`slice(${start}, ${end}): negative index`)
  if (start > end) throw new RangeError(`slice(${start}, ${end}): start is after end`)
  if (end > sizeOf(list)) throw new RangeError(`slice(${start}, ${end}): end is past the list size ${list.length}`)
  return list.slice(Number(start), Number(end))
}

function flatten(list: List, depth = 1n): unknown[] {
  if (depth < 0n) throw new RangeError(`flatten(${depth}): depth must not be negative`)
  const out: unknown[] = []
  for (const item of list) {
    if (Array.isArray(item) && depth > 0n) out.push(...flatten(item, depth - 1n))
    else out.push(item)
  }
  return out
}

/** A sort key and its kind; values of different kinds do not compare. */
function comparable(value: unknown): { kind: string; key: number | bigint | string } {
  if (typeof value === 'bigint') return { kind: 'int', key: value }
  if (typeof value === 'number') return { kind: 'double', key: value }
  if (typeof value === 'string') return { kind: 'string', key: value }
  if (typeof value === 'boolean') return { kind: 'bool', key: value ? 1 : 0 }
  if (value instanceof UnsignedInt) return { kind: 'uint', key: value.value }
  if (value instanceof Date) return { kind: 'timestamp', key: value.getTime() }
  if (value instanceof Duration) return { kind: 'duration', key: value.valueOf() }
  if (value instanceof Uint8Array) return { kind: 'bytes', key: Buffer.from(value).toString('latin1') }
  throw new TypeError(`sort: ${Array.isArray(value) ? 'list' : typeof value} values are not comparable`)
}

function sortByKeys<T>(items: readonly T[], keys: readonly unknown[]): T[] {
  const parsed = keys.map(comparable)
  const kind = parsed[0]?.kind
  if (parsed.some((p) => p.kind !== kind)) throw new TypeError('sort: the list mixes types that do not compare')
  return items
    .map((item, i) => ({ item, key: parsed[i]!.key }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((e) => e.item)
}

function distinct(list: List): unknown[] {
  const seen = new Set<string>()
  const out: unknown[] = []
  for (const item of list) {
    const key = typeof item === 'object' && item !== null ? `o${JSON.stringify(toPlain(item))}` : `${typeof item}:${String(item)}`
    if (seen.has(key)) continue
    seen.add(key)
    out.push(item)
  }
  return out
}

function range(n: bigint): bigint[] {
  if (n < 0n) throw new RangeError(`lists.range(${n}): n must not be negative`)
  return Array.from({ length: Number(n) }, (_v, i) => BigInt(i))
}

/* The macro hooks below use the same checker/evaluator calls as cel-js's own `cel.bind` macro. */
interface MacroContext {
  forkWithVariable(name: string, type: unknown): MacroContext
  reuse(parent: MacroContext): MacroContext
  setIterValue(value: unknown, ev: unknown): MacroContext
}
interface Checker {
  check(node: ASTNode, ctx: MacroContext): { kind: string; valueType?: unknown }
  getType(name: string): unknown
  createError(code: string, message: string, node: ASTNode): Error
}
interface Evaluator {
  run(node: ASTNode, ctx: MacroContext): unknown
}
interface SortByMacro {
  receiver: ASTNode
  iterVar: string
  key: ASTNode
  iterCtx?: MacroContext
}

/** `list.sortBy(x, keyExpr)`: sorts by the key each element gives (ngrok/cel-go's sortBy). */
function sortByMacro({ args, receiver }: { args: ASTNode[]; receiver: ASTNode }) {
  const [variable, key] = args
  if (variable?.op !== 'id' || !key) throw new SyntaxError('sortBy(var, key) needs a variable name first')
  return {
    receiver,
    iterVar: variable.args,
    key,
    async: false,
    typeCheck(chk: Checker, m: SortByMacro, ctx: MacroContext) {
      const type = chk.check(m.receiver, ctx)
      if (type.kind !== 'list' && type.kind !== 'dyn')
        throw chk.createError('invalid_macro_argument', 'sortBy() needs a list', m.receiver)
      m.iterCtx = ctx.forkWithVariable(m.iterVar, type.kind === 'list' ? type.valueType : chk.getType('dyn'))
      chk.check(m.key, m.iterCtx)
      return type
    },
    evaluate(ev: Evaluator, m: SortByMacro, ctx: MacroContext) {
      const items = ev.run(m.receiver, ctx)
      if (!Array.isArray(items)) throw new TypeError('sortBy() needs a list')
      const keys = items.map((item) => ev.run(m.key, m.iterCtx!.reuse(ctx).setIterValue(item, ev)))
      return sortByKeys(items, keys)
    },
  }
}

/** List helpers from ngrok's docs: `slice`, `flatten`, `sort`, `sortBy`, `distinct`, `lists.range`. */
export function registerLists(env: Environment): void {
  env.registerFunction('list<A>.slice(int, int): list<A>', slice)
  env.registerFunction('list.flatten(): list', (l: List) => flatten(l))
  env.registerFunction('list.flatten(int): list', flatten)
  env.registerFunction('list<A>.sort(): list<A>', (l: List) => sortByKeys(l, l))
  env.registerFunction('list.sortBy(ast, ast): list', sortByMacro)
  env.registerFunction('list<A>.distinct(): list<A>', distinct)
  const lists = defineNamespace(env, 'lists')
  env.registerFunction(`${lists}.range(int): list<int>`, (_ns: unknown, n: bigint) => range(n))
}
