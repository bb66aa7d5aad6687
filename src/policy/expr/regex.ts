import { memoize } from '../../lib/memo.ts'
/**
 * RE2 patterns (what ngrok's `matches` takes, Go syntax) run on JavaScript's RegExp. The common RE2
 * spellings JavaScript lacks are translated: leading flags `(?i)`/`(?s)`/`(?m)` (and mid-pattern
 * ones, as `(?i:…)` modifier groups), `(?P<name>…)`, `\A`, `\z`, `\Q…\E` and POSIX classes such as
 * `[[:alpha:]]`. RE2's `(?U)` (ungreedy) has no JavaScript form and is rejected.
 */

const POSIX_CLASSES: Readonly<Record<string, string>> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
}

const FLAGS = /^\(\?([imsU]+)\)/

function escapeLiteral(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')
}

/** Copies a `[...]` class starting at `i`; returns the JS text and the index after `]`. */
function translateClass(src: string, i: number): { out: string; next: number } {
  let out = '['
  let j = i + 1
  if (src[j] === '^') {
    out += '^'
    j++
  }
  // A `]` right after `[` or `[^` is a literal in RE2.
  if (src[j] === ']') {
    out += '\\]'
    j++
  }
  while (j < src.length && src[j] !== ']') {
    if (src.startsWith('[:', j)) {
      const end = src.indexOf(':]', j + 2)
      const name = end === -1 ? '' : src.slice(j + 2, end)
      const negated = name.startsWith('^')
      const body = POSIX_CLASSES[negated ? name.slice(1) : name]
      if (body === undefined) throw new SyntaxError(`unknown POSIX class "[:${name}:]"`)
      if (negated) throw new SyntaxError(`negated POSIX class "[:${name}:]" is not supported`)
      out += body
      j = end + 2
      continue
    }
    if (src[j] === '\\') {
      out += src.slice(j, j + 2)
      j += 2
      continue
    }
    if (src[j] === '[') out += '\\['
    else out += src[j]
    j++
  }
  if (j >= src.length) throw new SyntaxError('missing closing ]')
  return { out: out + ']', next: j + 1 }
}

/**
 * Translates an RE2 pattern to a JavaScript RegExp source and flags. Throws SyntaxError for what
 * cannot be translated (the caller reports it).
 *
 * @example translateRe2('(?i)^/api') // { source: '^/api', flags: 'i' }
 */
export function translateRe2(pattern: string): { source: string; flags: string } {
  let src = pattern
  let flags = ''
  const lead = FLAGS.exec(src)
  if (lead) {
    if (lead[1]!.includes('U')) throw new SyntaxError('the ungreedy flag (?U) is not supported')
    flags = [...new Set(lead[1]!)].join('')
    src = src.slice(lead[0].length)
  }
  let out = ''
  // Open groups; each lists the modifier groups a mid-pattern `(?i)` opened inside it.
  const open: string[][] = [[]]
  let i = 0
  while (i < src.length) {
    const ch = src[i]!
    if (ch === '\\') {
      const next = src[i + 1]
      if (next === undefined) throw new SyntaxError('trailing backslash')
      if (next === 'A') out += '(?<![\\s\\S])'
      else if (next === 'z') out += '(?![\\s\\S])'
      else if (next === 'Q') {
        const end = src.indexOf('\\E', i + 2)
        out += escapeLiteral(src.slice(i + 2, end === -1 ? undefined : end))
        i = end === -1 ? src.length : end + 2
        continue
      } else out += ch + next
      i += 2
      continue
    }
    if (ch === '[') {
      const cls = translateClass(src, i)
      out += cls.out
      i = cls.next
      continue
    }
    if (ch === '(') {
      if (src.startsWith('(?P<', i)) {
        out += '(?<'
        i += 4
        open.push([])
        continue
      }
      const mid = FLAGS.exec(src.slice(i))
      if (mid) {
        if (mid[1]!.includes('U')) throw new SyntaxError('the ungreedy flag (?U) is not supported')
        // Applies to the rest of the enclosing group: open a modifier group closed with it.
        const group = `(?${[...new Set(mid[1]!)].join('')}:`
        out += group
        open[open.length - 1]!.push(group)
        i += mid[0].length
        continue
      }
      open.push([])
      out += ch
      i++
      continue
    }
    if (ch === ')') {
      const extra = open.pop()
      if (extra === undefined || open.length === 0) throw new SyntaxError('unexpected )')
      out += ')'.repeat(extra.length) + ')'
      i++
      continue
    }
    const modifiers = open[open.length - 1]!
    if (ch === '|' && modifiers.length > 0) {
      // `a(?i)b|c`: in RE2 the flag still covers `c`, so close the modifier groups and reopen them.
      out += ')'.repeat(modifiers.length) + '|' + modifiers.join('')
      i++
      continue
    }
    out += ch
    i++
  }
  if (open.length !== 1) throw new SyntaxError('missing closing )')
  out += ')'.repeat(open[0]!.length)
  return { source: out, flags }
}

/** Patterns are usually literals, so this stays small; a failure is kept too, to be thrown again. */
const compileRe2 = memoize((pattern: string): RegExp | SyntaxError => {
  try {
    const { source, flags } = translateRe2(pattern)
    return new RegExp(source, flags)
  } catch (err) {
    return new SyntaxError(`invalid regular expression "${pattern}": ${err instanceof Error ? err.message : String(err)}`)
  }
}, 1000)

/** The RegExp for an RE2 pattern, compiled once and cached. Throws SyntaxError. */
export function re2(pattern: string): RegExp {
  const hit = compileRe2(pattern)
  if (hit instanceof SyntaxError) throw hit
  return hit
}
