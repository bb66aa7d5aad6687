import type { Environment } from '@marcbachmann/cel-js'
import { re2 } from '../regex.ts'
import { toText } from '../values.ts'
import { defineNamespace } from './namespace.ts'

/**
 * cel-js's own `string.matches` uses JavaScript regular expressions and cannot be replaced, so
 * expressions are rewritten at load to call this RE2-compatible method instead (rewrite.ts), and
 * error messages name `matches` again.
 */
export const MATCHES_METHOD = 'warrenMatches'

export function matches(text: string, pattern: string): boolean {
  return re2(pattern).test(text)
}

function codePoints(s: string): string[] {
  return [...s]
}

function charAt(s: string, index: bigint): string {
  const chars = codePoints(s)
  if (index < 0n || index > BigInt(chars.length)) throw new RangeError(`charAt: index ${index} out of range (length ${chars.length})`)
  return chars[Number(index)] ?? ''
}

/** Go's strings.Replace: at most `limit` replacements (all when negative). */
function replace(s: string, from: string, to: string, limit = -1n): string {
  if (from === '') {
    // An empty `from` matches before every character and at the end, as in Go.
    const chars = codePoints(s)
    const n = limit < 0n ? chars.length + 1 : Math.min(Number(limit), chars.length + 1)
    let out = ''
    for (let i = 0; i <= chars.length; i++) out += (i < n ? to : '') + (chars[i] ?? '')
    return out
  }
  if (limit < 0n) return s.split(from).join(to)
  let out = ''
  let rest = s
  for (let n = 0n; n < limit; n++) {
    const i = rest.indexOf(from)
    if (i === -1) break
    out += rest.slice(0, i) + to
    rest = rest.slice(i + from.length)
  }
  return out + rest
}

const GO_ESCAPES: Readonly<Record<string, string>> = {
  '\x07': '\\a',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\v': '\\v',
  '\\': '\\\\',
  '"': '\\"',
}

/** Go's strconv.Quote: double quotes, backslash escapes, non-printable characters as \x/\u. */
export function quote(s: string): string {
  let out = '"'
  for (const ch of s) {
    const esc = GO_ESCAPES[ch]
    if (esc) out += esc
    else {
      const cp = ch.codePointAt(0)!
      if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, '0')}`
      else if (cp >= 0xd800 && cp <= 0xdfff) out += '\\ufffd'
      else if ((cp >= 0x80 && cp < 0xa0) || cp === 0xfeff) out += `\\u${cp.toString(16).padStart(4, '0')}`
      else out += ch
    }
  }
  return out + '"'
}

function exponent(n: number, precision: number): string {
  // JavaScript writes e+0; Go and C write at least two exponent digits.
  return n.toExponential(precision).replace(/e([+-])(\d)$/, 'e$10$2')
}

function integer(arg: unknown, verb: string): bigint {
  if (typeof arg === 'bigint') return arg
  if (typeof arg === 'number' && Number.isInteger(arg)) return BigInt(arg)
  if (typeof arg === 'object' && arg !== null && typeof (arg as { valueOf(): unknown }).valueOf() === 'bigint')
    return (arg as { valueOf(): bigint }).valueOf()
  throw new TypeError(`format: %${verb} needs an integer, got ${typeof arg === 'string' ? 'string' : toText(arg)}`)
}

function double(arg: unknown, verb: string): number {
  if (typeof arg === 'number') return arg
  if (typeof arg === 'bigint') return Number(arg)
  throw new TypeError(`format: %${verb} needs a number, got ${typeof arg}`)
}

/** ngrok's `string.format(list)`: %s %d %f %e %b %x %X %o and %%, with `.N` precision for %f/%e. */
export function format(template: string, args: readonly unknown[]): string {
  let next = 0
  const take = (verb: string): unknown => {
    if (next >= args.length) throw new RangeError(`format: not enough arguments for %${verb} (got ${args.length})`)
    return args[next++]
  }
  return template.replace(/%(?:\.(\d+))?([sdfebxXo%])/g, (_m, prec: string | undefined, verb: string) => {
    if (verb === '%') return '%'
    const arg = take(verb)
    const precision = prec === undefined ? 6 : Number(prec)
    switch (verb) {
      case 's':
        return toText(arg)
      case 'd':
        return integer(arg, verb).toString()
      case 'f':
        return double(arg, verb).toFixed(precision)
      case 'e':
        return exponent(double(arg, verb), precision)
      case 'b':
        if (typeof arg === 'boolean') return arg ? '1' : '0'
        return integer(arg, verb).toString(2)
      case 'o':
        return integer(arg, verb).toString(8)
      default: {
        const hex = typeof arg === 'string' ? Buffer.from(arg).toString('hex') : integer(arg, verb).toString(16)
        return verb === 'X' ? hex.toUpperCase() : hex
      }
    }
  })
}

/**
 * String helpers beyond the CEL standard library, as ngrok documents them: `lower`, `upper`,
 * `split()`, `replace`, `charAt`, `format`, `reverse`, `strings.quote`, `matches(s, re)` and the
 * RE2 `matches` method.
 */
export function registerStrings(env: Environment): void {
  env.registerFunction('string.lower(): string', (s: string) => s.toLowerCase())
  env.registerFunction('string.upper(): string', (s: string) => s.toUpperCase())
  env.registerFunction('string.split(): list<string>', (s: string) => s.split(/\s+/).filter((p) => p !== ''))
  env.registerFunction('string.replace(string, string): string', (s: string, a: string, b: string) => replace(s, a, b))
  env.registerFunction('string.replace(string, string, int): string', replace)
  env.registerFunction('string.charAt(int): string', charAt)
  env.registerFunction('string.format(list): string', format)
  env.registerFunction('string.reverse(): string', (s: string) => codePoints(s).reverse().join(''))
  env.registerFunction('matches(string, string): bool', matches)
  env.registerFunction(`string.${MATCHES_METHOD}(string): bool`, matches)
  const strings = defineNamespace(env, 'strings')
  env.registerFunction(`${strings}.quote(string): string`, (_ns: unknown, s: string) => quote(s))
}
