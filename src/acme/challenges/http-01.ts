import type { Solver } from '../issue.ts'

/** Requests under this path prefix may be ACME HTTP-01 validations. */
export const HTTP01_PREFIX = '/.well-known/acme-challenge/'

/**
 * HTTP-01 (RFC 8555 §8.3) on the plaintext listener: while a name is being validated, GET
 * `http://<name>/.well-known/acme-challenge/<token>` answers the key authorization. Every other
 * request, including other tokens and other names under that path, goes to the endpoints as usual.
 */
export class Http01Responder implements Solver {
  /** name → token → key authorization. */
  readonly #pending = new Map<string, Map<string, string>>()

  async present(authz: { identifier: { value: string } }, challenge: { token: string }, keyAuthorization: string): Promise<void> {
    const name = authz.identifier.value.toLowerCase()
    let tokens = this.#pending.get(name)
    if (!tokens) this.#pending.set(name, (tokens = new Map()))
    tokens.set(challenge.token, keyAuthorization)
  }

  async cleanup(authz: { identifier: { value: string } }, challenge: { token: string }): Promise<void> {
    const name = authz.identifier.value.toLowerCase()
    const tokens = this.#pending.get(name)
    tokens?.delete(challenge.token)
    if (tokens?.size === 0) this.#pending.delete(name)
  }

  /**
   * The body for `host` (lower-case, no port) and `token` (the path after the prefix), or undefined
   * when that name is not being validated with that token.
   */
  respond(host: string, token: string): string | undefined {
    return this.#pending.get(host)?.get(token)
  }

  /** Names being validated now. */
  get pending(): number {
    return this.#pending.size
  }
}
