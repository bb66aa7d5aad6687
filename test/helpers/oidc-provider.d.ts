// oidc-provider ships no types; the tests' identity provider uses this much of it.
declare module 'oidc-provider' {
  import type { Server } from 'node:http'
  export default class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>)
    listen(port: number, host: string): Server
    /** A Koa middleware in front of the provider's routes. */
    use(middleware: (ctx: { path: string }, next: () => Promise<void>) => Promise<void>): void
  }
  export const errors: { InvalidTarget: new () => Error }
}
