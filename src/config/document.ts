import * as v from 'valibot'
import { isAlias, isCollection, isNode, isPair, LineCounter, parseDocument, visit, type Alias, type Document, type Node } from 'yaml'
import { CODES, type ErrorCode } from '../lib/errors.ts'
import type { IssuePath } from '../policy/issue.ts'

export interface Position {
  line: number
  col: number
}

/** A problem located in a file, printed as `file:line:col: message`. */
export interface FileIssue {
  file: string
  line: number
  col: number
  code: string
  message: string
}

export function formatIssue(issue: FileIssue): string {
  return `${issue.file}:${issue.line}:${issue.col}: ${issue.message} [${issue.code}]`
}

/** A parsed YAML (or JSON, which is YAML) document that can map key paths back to line and column. */
export interface SourceDocument {
  value: unknown
  locate(path: IssuePath): Position
}

/**
 * An unclosed `[` or `{` is reported by the yaml library where the next line starts (or at the end
 * of the file, past blank lines); the `]`/`}` is missing at the end of the last line with text.
 */
function unclosedFlowEnd(text: string, message: string, offset: number): number {
  if (!/end with a [\]}]/.test(message)) return offset
  let end = Math.min(offset, text.length)
  while (end > 0 && /\s/.test(text[end - 1]!)) end--
  return end
}

/** A document that cannot be read. `code` is set when it is more specific than the caller's syntax code. */
export type SourceError = Position & { message: string; code?: ErrorCode }

/**
 * How far aliases may expand (the yaml library's measure: uses of an anchor times the aliases inside
 * it). Real policies use a handful; a "billion laughs" document needs millions.
 */
const MAX_ALIAS_COUNT = 100

/** Nodes an alias copies when it is expanded, nested aliases included (memoized, capped). */
function expandedSize(doc: Document, node: Node | null | undefined, memo: Map<Node, number>, open: Set<Node>): number {
  if (!node) return 1
  if (isAlias(node)) return expandedSize(doc, node.resolve(doc), memo, open)
  const known = memo.get(node)
  if (known !== undefined) return known
  if (!isCollection(node) || open.has(node)) return 1
  open.add(node)
  let size = 1
  for (const item of node.items) {
    const parts = isPair(item) ? [item.key, item.value] : [item]
    for (const part of parts) size = Math.min(size + (isNode(part) ? expandedSize(doc, part, memo, open) : 1), Number.MAX_SAFE_INTEGER)
  }
  open.delete(node)
  memo.set(node, size)
  return size
}

/**
 * Explains why aliases could not be expanded, at the alias to blame: one whose anchor is not set
 * before it, else the one that copies the most.
 */
function aliasError(doc: Document, lines: LineCounter): SourceError {
  const aliases: Alias[] = []
  visit(doc, { Alias: (_, node) => void aliases.push(node) })
  const at = (node: Alias | undefined) => (node?.range ? lines.linePos(node.range[0]) : { line: 1, col: 1 })
  const unresolved = aliases.find((a) => !a.resolve(doc))
  if (unresolved) return { ...at(unresolved), message: `unknown alias *${unresolved.source}: its anchor &${unresolved.source} must be set before it` }
  const memo = new Map<Node, number>()
  let worst: { alias: Alias; size: number } | undefined
  for (const alias of aliases) {
    const size = expandedSize(doc, alias, memo, new Set())
    if (!worst || size > worst.size) worst = { alias, size }
  }
  return {
    ...at(worst?.alias),
    code: CODES.YAML_ALIAS_LIMIT,
    message: `YAML aliases expand too far: *${worst?.alias.source} alone copies ${worst?.size} values; refused as an alias bomb`,
  }
}

/** Parses YAML/JSON text; syntax errors come back with their positions. */
export function parseSource(text: string): { doc: SourceDocument } | { errors: SourceError[] } {
  const lines = new LineCounter()
  const doc: Document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  if (doc.errors.length) {
    return {
      errors: doc.errors.map((e) => {
        const pos = lines.linePos(unclosedFlowEnd(text, e.message, e.pos[0]))
        return { line: pos.line, col: pos.col, message: e.message.split('\n')[0] ?? e.message }
      }),
    }
  }
  let value: unknown
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT })
  } catch (err) {
    // The yaml library throws a bare ReferenceError, with no position, for aliases it cannot expand.
    if (!(err instanceof ReferenceError)) throw err
    return { errors: [aliasError(doc, lines)] }
  }
  return {
    doc: {
      value,
      locate(path) {
        // Walk down as far as the path exists: a missing key is reported at its parent.
        for (let n = path.length; n >= 0; n--) {
          const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true)
          if (isNode(node) && node.range) {
            const pos = lines.linePos(node.range[0])
            return { line: pos.line, col: pos.col }
          }
        }
        return { line: 1, col: 1 }
      },
    },
  }
}

/** Key path of a valibot issue, e.g. `['endpoints', 0, 'url']`. */
export function issuePath(issue: v.BaseIssue<unknown>): (string | number)[] {
  return (issue.path ?? []).map((p) => (typeof p.key === 'number' ? p.key : String(p.key)))
}

/** `endpoints[0].traffic_policy` style text for messages. */
export function pathText(path: IssuePath): string {
  let out = ''
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`
  return out
}

/** Human text for a valibot issue: names the field and what was wrong. */
export function describeIssue(issue: v.BaseIssue<unknown>, prefix: IssuePath = []): string {
  const path = [...prefix, ...issuePath(issue)]
  const where = path.length ? `${pathText(path)}: ` : ''
  if (issue.kind === 'schema' && issue.type === 'strict_object' && issue.expected === 'never')
    return `${pathText(path.slice(0, -1)) || 'top level'}: unknown key "${String(path[path.length - 1])}"`
  if (issue.type === 'variant' || issue.type === 'union') {
    const nested = (issue.issues ?? []).at(-1)
    if (nested && issue.type === 'union') return describeIssue(nested, prefix)
  }
  return `${where}${issue.message}`
}
