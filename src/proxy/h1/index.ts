export { h1Request, IDEMPOTENT_METHODS, UpstreamRefused, type H1RequestInit } from './client.ts'
export { H1ParseError } from './parse.ts'
export { H1Pool, originOf, sharedPool, type H1CloseReason, type H1Origin, type H1PoolOptions } from './pool.ts'
