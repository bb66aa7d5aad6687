import { describe, expect, test } from 'bun:test'
import { compileMessage, evalCel } from '../testing.ts'

/** ngrok's documented digests of 'hello'. */
const HELLO = {
  crc32: ['3610a686', 'NhCmhg=='],
  crc64: ['3c3eeee2d8100000', 'PD7u4tgQAAA='],
  md5: ['5d41402abc4b2a76b9719d911017c592', 'XUFAKrxLKna5cZ2REBfFkg=='],
  sha1: ['aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d', 'qvTGHdzF6KLavt4PO0gs2a6pQ00='],
  sha256: ['2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824', 'LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ='],
  sha512: [
    '9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043',
    'm3HSJL1i83hdltRq0+o9czGb+8KJDKra4t/3JRlnPKcjI8PZm6XBHXx6zG4UuMXaDEZjR1wuXDre9G9zvN7AQw==',
  ],
  xxhash64: ['26c7827d889f6da3', 'JseCfYifbaM='],
}

describe('hash.* and the string hash methods', () => {
  test.each(Object.entries(HELLO).map(([name, [hex, b64]]) => ({ name, hex: hex!, b64: b64! })))('$name', ({ name, hex, b64 }) => {
    expect(evalCel(`hash.${name}('hello')`)).toBe(hex)
    expect(evalCel(`hash.${name}('hello', 'hex')`)).toBe(hex)
    expect(evalCel(`hash.${name}('hello', 'base64')`)).toBe(b64)
    expect(evalCel(`'hello'.${name}()`)).toBe(hex)
    expect(evalCel(`'hello'.${name}('base64')`)).toBe(b64)
  })

  test.each([
    { expr: "hash.xxhash64('')", want: 'ef46db3751d8e999' },
    { expr: `hash.xxhash64('${'a'.repeat(100)}')`, want: '375041e8b1decfb3', desc: 'longer than one 32-byte stripe' },
    { expr: "hash.crc32('')", want: '00000000' },
  ])('$expr', ({ expr, want }) => {
    expect(evalCel(expr)).toBe(want)
  })

  test('an unknown format is a run-time error', () => {
    expect(() => evalCel("hash.sha256('x', 'hexx')")).toThrow(/format must be "hex" or "base64"/)
  })

  test('bytes are not accepted (ngrok hashes strings)', () => {
    expect(compileMessage("hash.sha256(b'x')")).toMatch(/no matching overload/)
  })
})
