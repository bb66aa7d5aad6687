import { CODES } from '../lib/errors.ts'

/** The ACME log codes (5xxx in lib/errors.ts), under the short names the acme/ modules use. */
export const ACME_CODES = {
  ORDER_FAILED: CODES.ACME_ORDER_FAILED,
  RATE_LIMITED: CODES.ACME_RATE_LIMITED,
  STORE_FAILED: CODES.ACME_STORE_FAILED,
  ON_DEMAND_LIMITED: CODES.ACME_ON_DEMAND_LIMITED,
} as const
