import type { ASTNode, Environment } from '@marcbachmann/cel-js'
import { DAY_OF_YEAR_METHOD } from './functions/time.ts'
import { cidrOf } from './functions/net.ts'
import { MATCHES_METHOD } from './functions/strings.ts'
import { re2 } from './regex.ts'
import { TEXT_FIELD } from './values.ts'
import { TEXT_WITH_FIELDS } from './variables.ts'

/*
 * Load-time source rewriting, on the parsed AST's positions (the public `start`/`end` of each node):
 * - `req.url` used as a value becomes `req.url.__text` (ngrok's "string with fields", see variables.ts);
 * - `.matches(` and `.getDayOfYear(` call warren's methods (RE2 syntax; time-zone-safe), since
 *   cel-js's built-ins cannot be replaced.
 * Error positions are mapped back to the original text, and messages name the public methods.
 */

/** Methods whose cel-js built-in is replaced: public name → warren's method. */
const RENAMED_METHODS: Readonly<Record<string, string>> = {
  matches: MATCHES_METHOD,
  getDayOfYear: DAY_OF_YEAR_METHOD,
}

export interface Edit {
  /** Offset in the original text. */
  at: number
  remove: number
  insert: string
}

/** A problem found in a literal argument (a regular expression, a CIDR), at an original offset. */
export interface LiteralProblem {
  offset: number
  message: string
}

export interface Rewritten {
  text: string
  edits: readonly Edit[]
  problems: readonly LiteralProblem[]
}

function isNode(x: unknown): x is ASTNode {
  return typeof x === 'object' && x !== null && 'op' in x && 'args' in x && typeof (x as { start?: unknown }).start === 'number'
}

/** The child nodes of any AST node (operands, call arguments, receivers, list and map entries). */
export function childrenOf(node: ASTNode): ASTNode[] {
  const out: ASTNode[] = []
  const collect = (x: unknown): void => {
    if (isNode(x)) out.push(x)
    else if (Array.isArray(x)) x.forEach(collect)
  }
  if (node.op !== 'value' && node.op !== 'id') collect(node.args)
  return out
}

/** `req.url.path` for a chain of field selections on a variable; undefined for anything else. */
export function selectPath(node: ASTNode): string | undefined {
  if (node.op === 'id') return node.args
  if (node.op !== '.') return undefined
  const base = selectPath(node.args[0])
  return base === undefined ? undefined : `${base}.${node.args[1]}`
}

function literalString(node: ASTNode | undefined): string | undefined {
  return node?.op === 'value' && typeof node.args === 'string' ? node.args : undefined
}

function checkRegex(node: ASTNode | undefined, problems: LiteralProblem[]): void {
  const pattern = literalString(node)
  if (pattern === undefined || node === undefined) return
  try {
    re2(pattern)
  } catch (err) {
    problems.push({ offset: node.start, message: (err as Error).message })
  }
}

function checkCidr(node: ASTNode | undefined, problems: LiteralProblem[]): void {
  const text = literalString(node)
  if (text === undefined || node === undefined) return
  if (cidrOf(text) === null) problems.push({ offset: node.start, message: `"${text}" is not a valid IPv4 or IPv6 CIDR` })
}

function collectEdits(input: string, root: ASTNode): Rewritten {
  const edits: Edit[] = []
  const problems: LiteralProblem[] = []
  const visit = (node: ASTNode, parent: ASTNode | undefined): void => {
    if (node.op === '.') {
      const path = selectPath(node)
      const selected = parent !== undefined && (parent.op === '.' || parent.op === '.?') && parent.args[0] === node
      if (path !== undefined && TEXT_WITH_FIELDS.has(path) && !selected) edits.push({ at: node.end, remove: 0, insert: `.${TEXT_FIELD}` })
    } else if (node.op === 'rcall') {
      const [name, receiver, args] = node.args
      const renamed = RENAMED_METHODS[name]
      if (renamed !== undefined) {
        const m = new RegExp(`^[\\s)]*\\.\\s*(?=${name}\\b)`).exec(input.slice(receiver.end))
        if (m) edits.push({ at: receiver.end + m[0].length, remove: name.length, insert: renamed })
      }
      if (name === 'matches') checkRegex(args[0], problems)
    } else if (node.op === 'call') {
      const [name, args] = node.args
      if (name === 'matches') checkRegex(args[1], problems)
      if (name === 'inCidrRange') checkCidr(args[1], problems)
      if (name === 'inCidrRanges' && args[1]?.op === 'list') for (const item of args[1].args) checkCidr(item, problems)
    }
    for (const child of childrenOf(node)) visit(child, node)
  }
  visit(root, undefined)
  edits.sort((a, b) => a.at - b.at)
  let text = ''
  let from = 0
  for (const e of edits) {
    text += input.slice(from, e.at) + e.insert
    from = e.at + e.remove
  }
  text += input.slice(from)
  return { text, edits, problems }
}

/** Parses `input` in `env` and rewrites it; throws the parser's error for a syntax error. */
export function rewrite(input: string, env: Environment): Rewritten {
  const ast = env.parse(input).ast
  return collectEdits(input, ast)
}

/** Maps an offset in the rewritten text back to the original text. */
export function originalOffset(edits: readonly Edit[], offset: number): number {
  let delta = 0
  for (const e of edits) {
    const start = e.at + delta
    if (offset < start) break
    if (offset < start + e.insert.length) return e.at
    delta += e.insert.length - e.remove
  }
  return offset - delta
}

/** Error messages name the public methods and fields, not warren's rewritten ones. */
export function publicNames(message: string): string {
  let out = message
  for (const [name, renamed] of Object.entries(RENAMED_METHODS)) out = out.replaceAll(renamed, name)
  return out.replaceAll(`.${TEXT_FIELD}`, '')
}
