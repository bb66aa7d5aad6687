/*
 * Helpers for the expression tests: compile an expression the way a policy would and run it against
 * the variables of a test request. Not used by the edge itself.
 */
import { celContext } from '../context.ts'
import { exchangeFor, type RequestInput } from '../test-runner.ts'
import type { EndpointInfo, HttpExchange, Phase } from '../types.ts'
import { compileCel } from './compile.ts'

export const TEST_ENDPOINT: EndpointInfo = {
  id: 'ep_test',
  url: 'https://api.example.com',
  scheme: 'https',
  host: 'api.example.com',
  port: 443,
  binding: 'public',
}

/** A test exchange: `request` as a policytest fixture writes it, plus exchange fields to override. */
export function testExchange(request: Partial<RequestInput> = {}, extra: Partial<HttpExchange> = {}): HttpExchange {
  const ex = exchangeFor({ method: 'GET', url: '/', headers: {}, client_ip: '127.0.0.1', ...request }, TEST_ENDPOINT)
  return Object.assign(ex, extra)
}

/** Compiles `expr` (in `phase`, default on_http_response where every variable exists) and runs it. */
export function evalCel(expr: string, ex: HttpExchange = testExchange(), phase: Phase = 'on_http_response'): unknown {
  const compiled = compileCel(expr, [phase, 0, 'expressions', 0], 'any')
  if ('issue' in compiled) throw new Error(compiled.issue.message)
  return compiled.program(celContext(ex))
}

/** The load-time message for `expr`, or undefined when it compiles. */
export function compileMessage(expr: string, phase: Phase = 'on_http_response', want: 'bool' | 'any' = 'any'): string | undefined {
  const compiled = compileCel(expr, [phase, 0, 'expressions', 0], want)
  return 'issue' in compiled ? compiled.issue.message : undefined
}
