/**
 * Stable codes for ACME log lines (the 5xxx range of lib/errors.ts; to be merged into `CODES` there).
 * Never reuse or renumber one: users alert on them.
 */
export const ACME_CODES = {
  /** An order failed (network, challenge, CA problem); retried with backoff, the old certificate keeps serving. */
  ORDER_FAILED: 'ERR_WARREN_5001',
  /** The CA answered `urn:ietf:params:acme:error:rateLimited`; the retry waits at least its Retry-After. */
  RATE_LIMITED: 'ERR_WARREN_5002',
  /** certs/acme/ could not be read or written. */
  STORE_FAILED: 'ERR_WARREN_5003',
  /** On-demand orders for new names are over their rate (10, then one per minute); the handshake was refused. */
  ON_DEMAND_LIMITED: 'ERR_WARREN_5004',
} as const
