import type { Context } from 'hono'
import { CODES, WarrenError, type ErrorCode } from '../lib/errors.ts'
import { log } from '../lib/log.ts'

/** The JSON body of every API error (ngrok's shape: `error_code`, `status_code`, `msg`, `details`). */
export interface ApiErrorBody {
  error_code: ErrorCode
  status_code: number
  msg: string
  details?: Record<string, unknown>
}

/** A WarrenError that maps onto an HTTP answer; `details` is added to the JSON body. */
export class ApiError extends WarrenError {
  readonly details: Record<string, unknown> | undefined

  constructor(code: ErrorCode, status: number, message: string, details?: Record<string, unknown>) {
    super(code, message, { status })
    this.name = 'ApiError'
    this.details = details
  }
}

/** Renders an error thrown by a handler. Unexpected failures are logged with their stack, never sent. */
export function errorResponse(c: Context, err: unknown): Response {
  if (err instanceof WarrenError && err.status !== undefined) {
    const body: ApiErrorBody = { error_code: err.code, status_code: err.status, msg: err.message }
    if (err instanceof ApiError && err.details) body.details = err.details
    return c.json(body, err.status as 400)
  }
  log.error('API request failed', { component: 'api', method: c.req.method, path: c.req.path, error: err instanceof Error ? (err.stack ?? err.message) : String(err) })
  const body: ApiErrorBody = { error_code: CODES.INTERNAL, status_code: 500, msg: 'Unexpected failure inside the edge; the edge log has the details' }
  return c.json(body, 500)
}
