import type { Environment } from '@marcbachmann/cel-js'
import { createHash } from 'node:crypto'
import { defineNamespace } from './namespace.ts'

const CRC32_TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

/** CRC-32 with the IEEE polynomial (Go's crc32.ChecksumIEEE), big-endian bytes. */
export function crc32(data: Uint8Array): Uint8Array {
  let c = 0xffffffff
  for (const byte of data) c = CRC32_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8)
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, (c ^ 0xffffffff) >>> 0)
  return out
}

const MASK64 = 0xffffffffffffffffn
const CRC64_ISO = 0xd800000000000000n
const CRC64_TABLE = (() => {
  const table: bigint[] = []
  for (let n = 0n; n < 256n; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1n ? CRC64_ISO ^ (c >> 1n) : c >> 1n
    table.push(c)
  }
  return table
})()

/** CRC-64 with the ISO polynomial (Go's crc64.Checksum(data, crc64.MakeTable(crc64.ISO))). */
export function crc64(data: Uint8Array): Uint8Array {
  let c = MASK64
  for (const byte of data) c = CRC64_TABLE[Number((c ^ BigInt(byte)) & 0xffn)]! ^ (c >> 8n)
  const out = new Uint8Array(8)
  new DataView(out.buffer).setBigUint64(0, c ^ MASK64)
  return out
}

const P1 = 11400714785074694791n
const P2 = 14029467366897019727n
const P3 = 1609587929392839161n
const P4 = 9650029242287828579n
const P5 = 2870177450012600261n

function rotl(x: bigint, r: bigint): bigint {
  return ((x << r) | (x >> (64n - r))) & MASK64
}

function round(acc: bigint, lane: bigint): bigint {
  return (rotl((acc + lane * P2) & MASK64, 31n) * P1) & MASK64
}

function merge(acc: bigint, val: bigint): bigint {
  return ((((acc ^ round(0n, val)) * P1) & MASK64) + P4) & MASK64
}

/** XXH64 with seed 0 (Go's cespare/xxhash Sum64), big-endian bytes. */
export function xxhash64(data: Uint8Array): Uint8Array {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const len = data.length
  let i = 0
  let h: bigint
  if (len >= 32) {
    let v1 = (P1 + P2) & MASK64
    let v2 = P2
    let v3 = 0n
    let v4 = (0n - P1) & MASK64
    for (; i + 32 <= len; i += 32) {
      v1 = round(v1, view.getBigUint64(i, true))
      v2 = round(v2, view.getBigUint64(i + 8, true))
      v3 = round(v3, view.getBigUint64(i + 16, true))
      v4 = round(v4, view.getBigUint64(i + 24, true))
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & MASK64
    h = merge(h, v1)
    h = merge(h, v2)
    h = merge(h, v3)
    h = merge(h, v4)
  } else h = P5
  h = (h + BigInt(len)) & MASK64
  for (; i + 8 <= len; i += 8) h = (((rotl(h ^ round(0n, view.getBigUint64(i, true)), 27n) * P1) & MASK64) + P4) & MASK64
  if (i + 4 <= len) {
    h = (((rotl(h ^ ((BigInt(view.getUint32(i, true)) * P1) & MASK64), 23n) * P2) & MASK64) + P3) & MASK64
    i += 4
  }
  for (; i < len; i++) h = (rotl(h ^ ((BigInt(data[i]!) * P5) & MASK64), 11n) * P1) & MASK64
  h ^= h >> 33n
  h = (h * P2) & MASK64
  h ^= h >> 29n
  h = (h * P3) & MASK64
  h ^= h >> 32n
  const out = new Uint8Array(8)
  new DataView(out.buffer).setBigUint64(0, h)
  return out
}

function digest(algorithm: string) {
  return (data: Uint8Array) => new Uint8Array(createHash(algorithm).update(data).digest())
}

/** The hash functions ngrok offers, by name; each takes bytes and returns the raw digest. */
export const HASHES: Readonly<Record<string, (data: Uint8Array) => Uint8Array>> = {
  crc32,
  crc64,
  md5: digest('md5'),
  sha1: digest('sha1'),
  sha256: digest('sha256'),
  sha512: digest('sha512'),
  xxhash64,
}

/** `hash.sha256('x', 'base64')` → digest text; the format is "hex" (default) or "base64". */
export function hashText(name: string, text: string, format = 'hex'): string {
  if (format !== 'hex' && format !== 'base64') throw new RangeError(`hash.${name}: format must be "hex" or "base64", not "${format}"`)
  return Buffer.from(HASHES[name]!(Buffer.from(text, 'utf8'))).toString(format)
}

/** `hash.<name>(string[, format])` and the method forms `'x'.<name>([format])` for every hash. */
export function registerHash(env: Environment): void {
  const hash = defineNamespace(env, 'hash')
  for (const name of Object.keys(HASHES)) {
    env.registerFunction(`${hash}.${name}(string): string`, (_ns: unknown, s: string) => hashText(name, s))
    env.registerFunction(`${hash}.${name}(string, string): string`, (_ns: unknown, s: string, f: string) => hashText(name, s, f))
    env.registerFunction(`string.${name}(): string`, (s: string) => hashText(name, s))
    env.registerFunction(`string.${name}(string): string`, (s: string, f: string) => hashText(name, s, f))
  }
}
