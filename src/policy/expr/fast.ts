import { VARIABLE_CLASSES } from '../context.ts'
import { inCidrRange } from './functions/net.ts'
import { matches, MATCHES_METHOD } from './functions/strings.ts'

/*
 * cel-js interprets the checked AST and checks every value's type at run time, about 0.3-0.8 µs
 * per expression. Most policy expressions are a few field reads, comparisons and string methods,
 * so those shapes are also compiled here into plain closures. A closure handles only the cases
 * whose CEL meaning is plain JavaScript (same-type comparisons, booleans, string methods); for
 * anything else it throws and compile.ts evaluates the expression with cel-js instead, which gives
 * the CEL result or error. So a fast program never returns a value cel-js would not.
 */

/** A compiled shape; throws when the values at hand need cel-js's full semantics. */
export type FastProgram = (context: Record<string, unknown>) => unknown

interface Node {
  op: string
  args: unknown
}

/** Thrown (never shown) when a fast program meets a value it does not handle. */
class NotFast extends Error {}
const NOT_FAST = new NotFast('not handled by the fast path')

function notFast(): never {
  throw NOT_FAST
}

/** Declared fields of every typed variable class: only those are read from its instances. */
const CLASS_FIELDS: ReadonlyMap<unknown, ReadonlySet<string>> = new Map(
  Object.values(VARIABLE_CLASSES).map((Class) => [
    Class,
    new Set(Object.getOwnPropertyNames(Class.prototype).filter((k) => k !== 'constructor' && k !== 'toJSON')),
  ]),
)

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** `obj.key` / `obj[key]` on a map or a typed variable; a missing key is CEL's no_such_key error. */
function field(obj: unknown, key: string): unknown {
  if (typeof obj !== 'object' || obj === null) return notFast()
  let value: unknown
  if (obj instanceof Map) value = obj.get(key)
  else if (isPlainObject(obj)) value = Object.hasOwn(obj, key) ? obj[key] : undefined
  else if (CLASS_FIELDS.get(obj.constructor)?.has(key)) value = (obj as Record<string, unknown>)[key]
  return value === undefined ? notFast() : value
}

function index(obj: unknown, key: unknown): unknown {
  if (typeof key === 'string') return field(obj, key)
  if (typeof key === 'bigint' && Array.isArray(obj) && key >= 0n && key < BigInt(obj.length)) return obj[Number(key)]
  return notFast()
}

type Primitive = string | boolean | bigint | number | null

/** CEL equality where it is JavaScript's: both strings, booleans, ints, doubles, or null. */
function equal(a: unknown, b: unknown): boolean {
  if (a === null || b === null) return a === null && b === null ? true : notFast()
  const t = typeof a
  if (t !== typeof b || (t !== 'string' && t !== 'boolean' && t !== 'bigint' && t !== 'number')) return notFast()
  return a === b
}

/** Ordering of two ints or two doubles (strings order by code point in CEL, not by UTF-16 unit). */
function ordered(a: unknown, b: unknown): [number | bigint, number | bigint] {
  const t = typeof a
  if (t !== typeof b || (t !== 'bigint' && t !== 'number')) return notFast()
  return [a as number | bigint, b as number | bigint]
}

function bool(value: unknown): boolean {
  return typeof value === 'boolean' ? value : notFast()
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : notFast()
}

function contains(container: unknown, element: unknown): boolean {
  if (Array.isArray(container)) {
    if (typeof element !== 'string') return notFast()
    for (const item of container) {
      if (typeof item !== 'string') return notFast()
      if (item === element) return true
    }
    return false
  }
  if (typeof element !== 'string' || typeof container !== 'object' || container === null) return notFast()
  if (container instanceof Map) return container.has(element)
  return isPlainObject(container) ? Object.hasOwn(container, element) : notFast()
}

function size(value: unknown): bigint {
  if (typeof value === 'string') {
    let n = 0
    for (const _ of value) n++
    return BigInt(n)
  }
  if (Array.isArray(value)) return BigInt(value.length)
  if (value instanceof Map) return BigInt(value.size)
  if (typeof value === 'object' && value !== null && isPlainObject(value)) return BigInt(Object.keys(value).length)
  return notFast()
}

function toText(value: unknown): string {
  if (typeof value === 'string') return value
  if (typeof value === 'bigint' || typeof value === 'boolean') return String(value)
  return notFast()
}

type Args = readonly FastProgram[]

/** Global functions with a fast form: their argument count and the program made from the arguments'. */
const CALLS: Readonly<Record<string, { arity: number; make: (args: Args) => FastProgram }>> = {
  inCidrRange: { arity: 2, make: ([ip, cidr]) => (c) => inCidrRange(text(ip!(c)), text(cidr!(c))) },
  size: { arity: 1, make: ([x]) => (c) => size(x!(c)) },
  string: { arity: 1, make: ([x]) => (c) => toText(x!(c)) },
}

type Order = (x: number | bigint, y: number | bigint) => boolean
const ORDERS: Readonly<Record<string, Order>> = { '<': (x, y) => x < y, '<=': (x, y) => x <= y, '>': (x, y) => x > y, '>=': (x, y) => x >= y }

/** String methods with a fast form (`receiver.method(arg)`). */
const METHODS: Readonly<Record<string, (s: string, arg: string) => boolean>> = {
  startsWith: (s, arg) => s.startsWith(arg),
  endsWith: (s, arg) => s.endsWith(arg),
  contains: (s, arg) => s.includes(arg),
  [MATCHES_METHOD]: (s, pattern) => matches(s, pattern),
}

function isNode(value: unknown): value is Node {
  return typeof value === 'object' && value !== null && typeof (value as Node).op === 'string'
}

function isPrimitive(value: unknown): value is Primitive {
  return value === null || ['string', 'boolean', 'bigint', 'number'].includes(typeof value)
}

/** The fast program of a checked cel-js AST, or undefined when some part of it has no fast form. */
export function compileFast(node: unknown): FastProgram | undefined {
  if (!isNode(node)) return undefined
  const args = node.args
  const sub = (i: number): FastProgram | undefined => (Array.isArray(args) ? compileFast(args[i]) : undefined)
  switch (node.op) {
    case 'value': {
      if (!isPrimitive(args)) return undefined
      return () => args
    }
    case 'id': {
      if (typeof args !== 'string') return undefined
      return (c) => c[args] ?? notFast()
    }
    case '.': {
      const obj = sub(0)
      const key = Array.isArray(args) ? args[1] : undefined
      if (!obj || typeof key !== 'string') return undefined
      // Inline cache: the variable class last seen here, once known to declare `key`, is read directly.
      let known: unknown = NOT_FAST // matches no constructor until a variable class is seen
      return (c) => {
        const o = obj(c) as Record<string, unknown> | null
        if (o !== null && typeof o === 'object' && o.constructor === known) return o[key] ?? notFast()
        const value = field(o, key)
        if (CLASS_FIELDS.get((o as object).constructor)?.has(key)) known = (o as object).constructor
        return value
      }
    }
    case '[]': {
      const [obj, key] = [sub(0), sub(1)]
      return obj && key && ((c) => index(obj(c), key(c)))
    }
    case '==':
    case '!=': {
      const [a, b] = [sub(0), sub(1)]
      if (!a || !b) return undefined
      return node.op === '==' ? (c) => equal(a(c), b(c)) : (c) => !equal(a(c), b(c))
    }
    case '<':
    case '<=':
    case '>':
    case '>=': {
      const [a, b] = [sub(0), sub(1)]
      if (!a || !b) return undefined
      const compare = ORDERS[node.op]!
      return (c) => compare(...ordered(a(c), b(c)))
    }
    case '&&':
    case '||': {
      const [a, b] = [sub(0), sub(1)]
      if (!a || !b) return undefined
      // Short-circuit only where CEL does: `false && x` is false and `true || x` is true even if x fails.
      return node.op === '&&' ? (c) => bool(a(c)) && bool(b(c)) : (c) => bool(a(c)) || bool(b(c))
    }
    case '!_': {
      const x = compileFast(args)
      return x && ((c) => !bool(x(c)))
    }
    case '?:': {
      const [cond, then, otherwise] = [sub(0), sub(1), sub(2)]
      return cond && then && otherwise && ((c) => (bool(cond(c)) ? then(c) : otherwise(c)))
    }
    case 'in': {
      const [element, container] = [sub(0), sub(1)]
      return element && container && ((c) => contains(container(c), element(c)))
    }
    case 'list': {
      if (!Array.isArray(args)) return undefined
      const items = args.map((a) => compileFast(a))
      if (items.some((i) => !i)) return undefined
      const programs = items as FastProgram[]
      return (c) => programs.map((p) => p(c))
    }
    case 'call': {
      if (!Array.isArray(args) || typeof args[0] !== 'string' || !Array.isArray(args[1])) return undefined
      const call = Object.hasOwn(CALLS, args[0]) ? CALLS[args[0]] : undefined
      const params = (args[1] as unknown[]).map((a) => compileFast(a))
      if (!call || params.length !== call.arity || params.some((p) => !p)) return undefined
      return call.make(params as FastProgram[])
    }
    case 'rcall': {
      if (!Array.isArray(args) || typeof args[0] !== 'string' || !Array.isArray(args[2]) || args[2].length !== 1) return undefined
      const method = Object.hasOwn(METHODS, args[0]) ? METHODS[args[0]] : undefined
      const [receiver, arg] = [compileFast(args[1]), compileFast(args[2][0])]
      return method && receiver && arg && ((c) => method(text(receiver(c)), text(arg(c))))
    }
    default:
      return undefined
  }
}

/** Runs `fast`, or `full` (cel-js) when the fast program does not handle these values. */
export function withFallback(fast: FastProgram, full: FastProgram): FastProgram {
  return function evaluateFast(context) {
    try {
      return fast(context)
    } catch {
      return full(context)
    }
  }
}
