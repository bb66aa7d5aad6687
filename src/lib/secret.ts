/**
 * A value that must never reach a log line or an error message (authtokens, passwords). It prints
 * `HIDDEN` however it is turned into text; `reveal()` is the one way to read it.
 *
 * @example new Secret('tok').toString() // 'HIDDEN'
 */
export class Secret {
  readonly #value: string

  constructor(value: string) {
    this.#value = value
  }

  reveal(): string {
    return this.#value
  }

  get empty(): boolean {
    return this.#value === ''
  }

  toString(): string {
    return 'HIDDEN'
  }

  toJSON(): string {
    return 'HIDDEN'
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'Secret(HIDDEN)'
  }
}
