import type { ASTNode } from '@marcbachmann/cel-js'
import type { Phase } from '../types.ts'
import { environmentFor } from './env.ts'
import { childrenOf } from './rewrite.ts'

const VARIABLES: ReadonlySet<string> = new Set(['conn', 'endpoint', 'req', 'res', 'time', 'vars', 'actions'])
const MACROS: ReadonlySet<string> = new Set([
  'getReqHeader',
  'hasReqHeader',
  'getQueryParam',
  'hasQueryParam',
  'getReqCookie',
  'hasReqCookie',
  'getResHeader',
  'hasResHeader',
  'getResCookie',
  'hasResCookie',
])

/** The variable an access chain (`req.headers['x'][0]`, literal indexes only) starts from. */
function rootOf(node: ASTNode): string | undefined {
  if (node.op === 'id') return node.args
  if (node.op === '.' || node.op === '.?') return rootOf(node.args[0])
  if ((node.op === '[]' || node.op === '[?]') && node.args[1].op === 'value') return rootOf(node.args[0])
  return undefined
}

/**
 * The inputs an expression reads, as source text: the longest variable access chains
 * (`req.url.path`, `req.headers['x-key']`) and the request/response macro calls. `warren policy
 * explain` prints their values to show why an expression gave its result. Empty when it does not parse.
 */
export function operandTexts(expr: string, phase?: Phase): string[] {
  let ast: ASTNode
  try {
    ast = environmentFor(phase).parse(expr).ast
  } catch {
    return []
  }
  const out: string[] = []
  // Stops at the outermost access chain, so only the longest one is reported.
  const visit = (node: ASTNode): void => {
    const root = rootOf(node)
    if (root !== undefined && VARIABLES.has(root) && node.op !== 'id') {
      out.push(expr.slice(node.start, node.end))
      return
    }
    if (node.op === 'call' && MACROS.has(node.args[0])) {
      out.push(expr.slice(node.start, node.end))
      return
    }
    for (const child of childrenOf(node)) visit(child)
  }
  visit(ast)
  return [...new Set(out)]
}
