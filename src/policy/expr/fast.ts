import type { ObjectSchema } from '@marcbachmann/cel-js'
import { celContext, EXCHANGE_HELPERS, EXCHANGE_READS, headersBehind, VARIABLE_CLASSES } from '../context.ts'
import { cidrOf, inCidr, inCidrRange } from './functions/net.ts'
import { matches, MATCHES_METHOD } from './functions/strings.ts'
import { re2 } from './regex.ts'
import { intText } from './values.ts'
import { SCHEMAS } from './variables.ts'

/*
 * cel-js interprets the checked AST and checks every value's type at run time, about 0.3-0.8 µs
 * per expression. Most policy expressions are a few field reads, comparisons and string methods,
 * so those shapes are also compiled here, at load, into one straight-line JavaScript function per
 * expression. It handles only the cases whose CEL meaning is plain JavaScript (same-type
 * comparisons, booleans, string methods); for anything else it throws and compile.ts evaluates the
 * expression with cel-js instead, which gives the CEL result or error. So a fast program never
 * returns a value cel-js would not (fast.test.ts and differential.test.ts compare the two).
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

/** True when `a` and `b` are two ints or two doubles, which order as in JavaScript (strings order by code point in CEL, not by UTF-16 unit). */
function ordered(a: unknown, b: unknown): boolean {
  const t = typeof a
  return t === typeof b && (t === 'bigint' || t === 'number')
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
  if (typeof value === 'bigint') return intText(value)
  if (typeof value === 'boolean') return String(value)
  return notFast()
}

/**
 * `name in req.headers` (or `res.headers`) asked of the exchange's Headers, which match names
 * case-insensitively as `HeaderMap` does, without building the map of every header.
 */
function hasHeader(headers: Headers | undefined, name: unknown): boolean {
  return headers && typeof name === 'string' ? headers.has(name) : notFast()
}

/**
 * `req.headers[name]` (or `res.headers[name]`): the header's lines as `HeaderMap` lists them (each
 * Set-Cookie line apart, any other header as its joined value), read from the exchange's Headers.
 * A missing header is CEL's no_such_key error, which cel-js gives.
 */
function headerLines(headers: Headers | undefined, name: unknown): string[] {
  if (!headers || typeof name !== 'string') return notFast()
  if (name.toLowerCase() === 'set-cookie') {
    const lines = headers.getSetCookie()
    return lines.length ? lines : notFast()
  }
  const value = headers.get(name)
  return value === null ? notFast() : [value]
}

type Order = (a: unknown, b: unknown) => boolean
function order(compare: (x: number | bigint, y: number | bigint) => boolean): Order {
  return (a, b) => (ordered(a, b) ? compare(a as number | bigint, b as number | bigint) : notFast())
}

/**
 * Everything generated code can reach besides its constants: `new Function` code sees only its
 * parameters and globals, and it is given these two (as `rt` and `K`).
 */
export const FAST_RUNTIME = {
  /** The variables of an exchange, and the helpers of EXCHANGE_READS (code generated with the exchange). */
  context: celContext,
  x: EXCHANGE_HELPERS,
  headersBehind,
  notFast,
  field,
  index,
  equal,
  lt: order((x, y) => x < y),
  le: order((x, y) => x <= y),
  gt: order((x, y) => x > y),
  ge: order((x, y) => x >= y),
  bool,
  text,
  contains,
  hasHeader,
  headerLines,
  size,
  toText,
  inCidrRange,
  inCidr,
  matches,
}

/** Global functions with a fast form: argument count and the code made from the arguments' code. */
const CALLS: Readonly<Record<string, { arity: number; code: (args: readonly string[]) => string }>> = {
  inCidrRange: { arity: 2, code: ([ip, cidr]) => `rt.inCidrRange(rt.text(${ip}), rt.text(${cidr}))` },
  size: { arity: 1, code: ([x]) => `rt.size(${x})` },
  string: { arity: 1, code: ([x]) => `rt.toText(${x})` },
}

/** The value of a string literal node, else undefined (a constant argument is prepared at load). */
function literalText(node: unknown): string | undefined {
  return isNode(node) && node.op === 'value' && typeof node.args === 'string' ? node.args : undefined
}

/** A literal `matches` pattern compiled, or undefined when it does not compile. */
function literalRegExp(pattern: string): RegExp | undefined {
  try {
    return re2(pattern)
  } catch {
    return undefined
  }
}

/** String methods with a fast form (`receiver.method(arg)`): the code from the receiver's and the argument's. */
const METHODS: Readonly<Record<string, (s: string, arg: string) => string>> = {
  startsWith: (s, arg) => `rt.text(${s}).startsWith(rt.text(${arg}))`,
  endsWith: (s, arg) => `rt.text(${s}).endsWith(rt.text(${arg}))`,
  contains: (s, arg) => `rt.text(${s}).includes(rt.text(${arg}))`,
  [MATCHES_METHOD]: (s, arg) => `rt.matches(rt.text(${s}), rt.text(${arg}))`,
}

const ORDER_CALLS: Readonly<Record<string, string>> = { '<': 'rt.lt', '<=': 'rt.le', '>': 'rt.gt', '>=': 'rt.ge' }

function isNode(value: unknown): value is Node {
  return typeof value === 'object' && value !== null && typeof (value as Node).op === 'string'
}

function isPrimitive(value: unknown): value is Primitive {
  return value === null || ['string', 'boolean', 'bigint', 'number'].includes(typeof value)
}

/** The variable path a field selection names (`req.url.path`), or undefined when it is not one. */
function pathOf(node: Node): string | undefined {
  if (node.op === 'id') return typeof node.args === 'string' ? node.args : undefined
  if (node.op !== '.' || !Array.isArray(node.args) || !isNode(node.args[0]) || typeof node.args[1] !== 'string') return undefined
  const obj = pathOf(node.args[0])
  return obj === undefined ? undefined : `${obj}.${node.args[1]}`
}

/** Generated JavaScript of one AST node; `typed` names the variable type (`req.url`) when it is known at load. */
interface Code {
  js: string
  typed?: string
  /** Set for `req.headers`/`res.headers`: code giving the Headers behind them (for `in` and `[]`), or undefined. */
  headersOf?: string
}

/** The schema of a typed variable path (`req`, `req.url`), when it has fields. */
function schemaOf(path: string): ObjectSchema | undefined {
  let schema: ObjectSchema | string | undefined = SCHEMAS[path.split('.')[0] as keyof typeof SCHEMAS]
  for (const key of path.split('.').slice(1)) schema = typeof schema === 'object' && Object.hasOwn(schema, key) ? schema[key] : undefined
  return typeof schema === 'object' ? schema : undefined
}

/**
 * Turns a checked AST into the source of one JavaScript function. No text of the expression becomes
 * code: literals (strings, field names) are written with JSON.stringify, numbers go into the
 * constants array `K`, and every operator, call and method comes from the fixed templates above,
 * picked by name from tables that only own properties are read from.
 */
export class FastGenerator {
  readonly constants: unknown[] = []
  temps = 0
  /**
   * Set when the generated code has the exchange as `ex` (a phase's or a template's function): fields
   * listed in EXCHANGE_READS are read there, any other variable through `rt.context(ex)`; else the
   * code reads the variables `c`.
   */
  readonly exchange: boolean

  constructor(options: { exchange?: boolean } = {}) {
    this.exchange = options.exchange === true
  }

  /** The exchange read of a variable path (`req.method`), when the code has the exchange and the path has one. */
  #direct(path: string): string | undefined {
    return this.exchange && Object.hasOwn(EXCHANGE_READS, path) ? EXCHANGE_READS[path] : undefined
  }

  constant(value: unknown): string {
    this.constants.push(value)
    return `K[${this.constants.length - 1}]`
  }

  temp(): string {
    return `t${this.temps++}`
  }

  code(node: unknown): Code | undefined {
    if (!isNode(node)) return undefined
    const args = node.args
    const sub = (i: number): Code | undefined => (Array.isArray(args) ? this.code(args[i]) : undefined)
    switch (node.op) {
      case 'value': {
        if (!isPrimitive(args)) return undefined
        if (typeof args === 'string') return { js: JSON.stringify(args) }
        if (typeof args === 'boolean' || args === null) return { js: String(args) }
        return { js: this.constant(args) }
      }
      case 'id': {
        if (typeof args !== 'string') return undefined
        const direct = this.#direct(args)
        if (direct !== undefined) return schemaOf(args) ? { js: direct, typed: args } : { js: direct }
        const js = `(${this.exchange ? 'rt.context(ex)' : 'c'}[${JSON.stringify(args)}] ?? rt.notFast())`
        return schemaOf(args) ? { js, typed: args } : { js }
      }
      case '.': {
        // `req.method` and the like: read from the exchange, without the variable objects (not even to reach them).
        const named = pathOf(node)
        const direct = named === undefined ? undefined : this.#direct(named)
        if (named !== undefined && direct !== undefined) return schemaOf(named) ? { js: direct, typed: named } : { js: direct }
        const obj = sub(0)
        const key = Array.isArray(args) ? args[1] : undefined
        if (!obj || typeof key !== 'string') return undefined
        const schema = obj.typed === undefined ? undefined : schemaOf(obj.typed)
        const Class = obj.typed === undefined ? undefined : VARIABLE_CLASSES[obj.typed]
        const name = JSON.stringify(key)
        if (!schema || !Class || !Object.hasOwn(schema, key)) return { js: `rt.field(${obj.js}, ${name})` }
        // A declared field of a typed variable: a plain property read (each read site keeps its own
        // inline cache); anything else at run time (an absent `res`) takes the checked path.
        const t = this.temp()
        const js = `((${t} = ${obj.js}) instanceof ${this.constant(Class)} ? (${t}[${name}] ?? rt.notFast()) : rt.field(${t}, ${name}))`
        const path = `${obj.typed}.${key}`
        // The exchange's own headers where the code has it, else those behind the `req`/`res` value.
        if (path === 'req.headers' || path === 'res.headers') return { js, headersOf: this.exchange && path === 'req.headers' ? 'ex.headers' : `rt.headersBehind(${obj.js})` }
        return schemaOf(path) ? { js, typed: path } : { js }
      }
      case '[]': {
        const [obj, key] = [sub(0), sub(1)]
        if (!obj || !key) return undefined
        // One header asked of the Headers, without building the map of every header.
        if (obj.headersOf) return { js: `rt.headerLines(${obj.headersOf}, ${key.js})` }
        return { js: `rt.index(${obj.js}, ${key.js})` }
      }
      case '==':
      case '!=': {
        const [a, b] = [sub(0), sub(1)]
        if (!a || !b) return undefined
        const not = node.op === '!=' ? '!' : ''
        const literal = Array.isArray(args) ? [args[0], args[1]].findIndex((n) => isNode(n) && n.op === 'value' && typeof n.args === 'string') : -1
        if (literal === -1) return { js: `${not}rt.equal(${a.js}, ${b.js})` }
        // Against a string literal: a string compares with ===, anything else goes through `equal`.
        const [other, lit] = literal === 1 ? [a, b] : [b, a]
        const t = this.temp()
        return { js: `${not}(typeof (${t} = ${other.js}) === 'string' ? ${t} === ${lit.js} : rt.equal(${t}, ${lit.js}))` }
      }
      case '<':
      case '<=':
      case '>':
      case '>=': {
        const [a, b] = [sub(0), sub(1)]
        return a && b && { js: `${ORDER_CALLS[node.op]}(${a.js}, ${b.js})` }
      }
      case '&&':
      case '||': {
        const [a, b] = [sub(0), sub(1)]
        // Short-circuit only where CEL does: `false && x` is false and `true || x` is true even if x fails.
        return a && b && { js: `(rt.bool(${a.js}) ${node.op} rt.bool(${b.js}))` }
      }
      case '!_': {
        const x = this.code(args)
        return x && { js: `!rt.bool(${x.js})` }
      }
      case '?:': {
        const [cond, then, otherwise] = [sub(0), sub(1), sub(2)]
        return cond && then && otherwise && { js: `(rt.bool(${cond.js}) ? ${then.js} : ${otherwise.js})` }
      }
      case 'in': {
        const [element, container] = [sub(0), sub(1)]
        if (!element || !container) return undefined
        if (container.headersOf) return { js: `rt.hasHeader(${container.headersOf}, ${element.js})` }
        return { js: `rt.contains(${container.js}, ${element.js})` }
      }
      case 'list': {
        if (!Array.isArray(args)) return undefined
        const items = args.map((a) => this.code(a))
        if (items.some((i) => !i)) return undefined
        return { js: `[${items.map((i) => i!.js).join(', ')}]` }
      }
      case 'call': {
        if (!Array.isArray(args) || typeof args[0] !== 'string' || !Array.isArray(args[1])) return undefined
        const call = Object.hasOwn(CALLS, args[0]) ? CALLS[args[0]] : undefined
        const params = (args[1] as unknown[]).map((a) => this.code(a))
        if (!call || params.length !== call.arity || params.some((p) => !p)) return undefined
        // A literal range is parsed here, once, instead of looked up per request.
        const cidr = args[0] === 'inCidrRange' ? literalText((args[1] as unknown[])[1]) : undefined
        if (cidr !== undefined) return { js: `rt.inCidr(rt.text(${params[0]!.js}), ${this.constant(cidrOf(cidr))})` }
        return { js: call.code(params.map((p) => p!.js)) }
      }
      case 'rcall': {
        if (!Array.isArray(args) || typeof args[0] !== 'string' || !Array.isArray(args[2]) || args[2].length !== 1) return undefined
        const method = Object.hasOwn(METHODS, args[0]) ? METHODS[args[0]] : undefined
        const [receiver, arg] = [this.code(args[1]), this.code(args[2][0])]
        if (!method || !receiver || !arg) return undefined
        // A literal pattern is compiled here, once; one that does not compile stays a call, whose error cel-js reports.
        const pattern = args[0] === MATCHES_METHOD ? literalText(args[2][0]) : undefined
        const re = pattern === undefined ? undefined : literalRegExp(pattern)
        if (re) return { js: `${this.constant(re)}.test(rt.text(${receiver.js}))` }
        return { js: method(receiver.js, arg.js) }
      }
      default:
        return undefined
    }
  }
}

/** The JavaScript source of an expression's fast program, or undefined when a part has no fast form (for tests). */
export function fastSource(node: unknown): { source: string; constants: unknown[] } | undefined {
  const gen = new FastGenerator()
  const body = gen.code(node)
  if (!body) return undefined
  const temps = Array.from({ length: gen.temps }, (_, i) => `t${i}`)
  const declare = temps.length ? `let ${temps.join(', ')}\n  ` : ''
  return { source: `'use strict'\nreturn function fastCel(c) {\n  ${declare}return ${body.js}\n}`, constants: gen.constants }
}

/**
 * The fast program of a checked cel-js AST, or undefined when some part of it has no fast form.
 * Generated once at load as one straight-line function, so the engine's JIT sees plain property
 * reads and comparisons instead of a tree of closures.
 */
export function compileFast(node: unknown): FastProgram | undefined {
  const generated = fastSource(node)
  if (!generated) return undefined
  // The source is built only from fixed templates and JSON literals (see FastGenerator).
  const factory = new Function('rt', 'K', generated.source) as (rt: typeof FAST_RUNTIME, constants: readonly unknown[]) => FastProgram
  return factory(FAST_RUNTIME, Object.freeze(generated.constants))
}
