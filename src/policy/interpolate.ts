import { CODES } from '../lib/errors.ts'
import { compileCel, type CelProgram } from './expr/compile.ts'
import type { ConfigIssue, IssuePath } from './issue.ts'

/** A config string with `${expr}` parts, compiled once; `render` runs per request. */
export interface Template {
  /** True when the text has no `${…}`: callers can skip per-request work. */
  readonly constant: boolean
  render(context: () => Record<string, unknown>): string
}

type Part = string | CelProgram

/** Finds `${…}` spans, skipping braces inside quoted CEL strings. */
function split(text: string): { parts: (string | { expr: string })[] } | { error: string } {
  const parts: (string | { expr: string })[] = []
  let i = 0
  let literal = ''
  while (i < text.length) {
    if (text[i] === '$' && text[i + 1] === '{') {
      let depth = 1
      let j = i + 2
      let quote: string | null = null
      for (; j < text.length && depth > 0; j++) {
        const ch = text[j]
        if (quote) {
          if (ch === '\\') j++
          else if (ch === quote) quote = null
        } else if (ch === '"' || ch === "'") quote = ch
        else if (ch === '{') depth++
        else if (ch === '}') depth--
      }
      if (depth > 0) return { error: `unclosed "\${" at offset ${i}` }
      if (literal) parts.push(literal)
      literal = ''
      parts.push({ expr: text.slice(i + 2, j - 1) })
      i = j
    } else {
      literal += text[i]
      i++
    }
  }
  if (literal) parts.push(literal)
  return { parts }
}

function stringify(value: unknown): string {
  if (typeof value === 'string') return value
  if (typeof value === 'bigint' || typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (value === null || value === undefined) return ''
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))
}

/** Compiles `text` into a template, or returns the issues found in its expressions. */
export function compileTemplate(text: string, path: IssuePath): Template | ConfigIssue[] {
  const found = split(text)
  if ('error' in found)
    return [{ code: CODES.EXPRESSION_INVALID, path, message: `invalid template "${text}": ${found.error}` }]
  const issues: ConfigIssue[] = []
  const parts: Part[] = []
  for (const part of found.parts) {
    if (typeof part === 'string') {
      parts.push(part)
      continue
    }
    const compiled = compileCel(part.expr, path, 'any')
    if ('issue' in compiled) issues.push(compiled.issue)
    else parts.push(compiled.program)
  }
  if (issues.length) return issues
  if (parts.every((p) => typeof p === 'string')) {
    const constant = parts.join('')
    return { constant: true, render: () => constant }
  }
  return {
    constant: false,
    render(context) {
      const ctx = context()
      let out = ''
      for (const part of parts) out += typeof part === 'string' ? part : stringify(part(ctx))
      return out
    },
  }
}
