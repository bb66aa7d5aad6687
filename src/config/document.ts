import * as v from 'valibot'
import { isNode, LineCounter, parseDocument, type Document } from 'yaml'
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

/** Parses YAML/JSON text; syntax errors come back with their positions. */
export function parseSource(text: string): { doc: SourceDocument } | { errors: (Position & { message: string })[] } {
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
  return {
    doc: {
      value: doc.toJS({ maxAliasCount: 100 }),
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
