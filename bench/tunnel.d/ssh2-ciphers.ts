// Seals and opens SSH packets with ssh2's own cipher classes (the pure-JS path over node:crypto that
// the edge runs under Bun), per cipher the SSH front door could negotiate: microseconds per packet.
//   bun bench/tunnel.d/ssh2-ciphers.ts [packets=20000] [payload bytes=100]
// Each packet is opened in two halves, as socket reads cut packets. Two rounds: the first warms the JIT.
import { randomBytes } from 'node:crypto'

interface Cipher {
  allocPacket(payloadLen: number): Buffer
  encrypt(packet: Buffer): void
}
interface Decipher {
  decrypt(data: Buffer, p: number, dataLen: number): void
}
const ssh2Crypto = require('ssh2/lib/protocol/crypto.js') as {
  CIPHER_INFO: Record<string, { keyLen: number; ivLen: number }>
  MAC_INFO: Record<string, { len: number }>
  init: Promise<void>
  createCipher(config: unknown): Cipher
  createDecipher(config: unknown): Decipher
}
await ssh2Crypto.init

const N = Number(process.argv[2] ?? 20000)
const size = Number(process.argv[3] ?? 100)
const suites: [string, string | undefined][] = [
  ['aes128-ctr', 'hmac-sha2-256-etm@openssh.com'], // what OpenSSH picks when the server offers CTR
  ['aes128-gcm@openssh.com', undefined],
]
for (const round of [1, 2])
  for (const [cipher, mac] of suites) {
    const ci = ssh2Crypto.CIPHER_INFO[cipher]!
    const mi = mac ? ssh2Crypto.MAC_INFO[mac] : undefined
    const key = randomBytes(ci.keyLen)
    const iv = randomBytes(ci.ivLen)
    const macKey = mi ? randomBytes(mi.len) : undefined
    const wire: Buffer[] = []
    let opened = 0
    const enc = ssh2Crypto.createCipher({ outbound: { onWrite: (b: Buffer) => wire.push(b), cipherInfo: ci, cipherKey: key, cipherIV: Buffer.from(iv), seqno: 0, macInfo: mi, macKey } })
    const dec = ssh2Crypto.createDecipher({ inbound: { onPayload: () => void opened++, decipherInfo: ci, decipherKey: key, decipherIV: Buffer.from(iv), seqno: 0, macInfo: mi, macKey } })
    let sealUs = 0
    let openUs = 0
    for (let i = 0; i < N; i++) {
      const t0 = performance.now()
      enc.encrypt(enc.allocPacket(size))
      const packet = Buffer.concat(wire)
      wire.length = 0
      const t1 = performance.now()
      const half = packet.length >> 1
      dec.decrypt(packet.subarray(0, half), 0, half)
      dec.decrypt(packet.subarray(half), 0, packet.length - half)
      openUs += (performance.now() - t1) * 1000
      sealUs += (t1 - t0) * 1000
    }
    if (opened !== N) throw new Error(`${cipher}: ${opened} of ${N} packets opened`)
    console.log(`round ${round} ${cipher}${mac ? ` + ${mac}` : ''}, ${size} B payload: seal ${(sealUs / N).toFixed(1)} us, open ${(openUs / N).toFixed(1)} us per packet`)
  }
