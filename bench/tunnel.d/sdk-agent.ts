// bench/tunnel's agent: the official ngrok SDK (npm @ngrok/ngrok, unmodified) under Bun, connected to a
// warren edge, with one plain-HTTP agent endpoint per NAME=UPSTREAM pair.
// Usage: SERVER_ADDR=127.0.0.1:28504 ROOT_CAS=certs/dev-ca.pem AUTHTOKEN=t \
//        ENDPOINTS="a.alice.warren.localhost=http://127.0.0.1:28500 b.alice.warren.localhost=http://127.0.0.1:28501" \
//        bun bench/tunnel.d/sdk-agent.ts
// Prints "ready <url>..." once every endpoint is bound; SIGTERM unbinds and closes the session.
import ngrok from '@ngrok/ngrok'

const env = (name: string): string => process.env[name] ?? (console.error(`${name} is required`), process.exit(2))
const session = await new ngrok.SessionBuilder().authtoken(env('AUTHTOKEN')).serverAddr(env('SERVER_ADDR')).rootCas(env('ROOT_CAS')).connect()
const listeners: ngrok.Listener[] = []
for (const pair of env('ENDPOINTS').split(/\s+/).filter(Boolean)) {
  const [name, upstream] = pair.split('=') as [string, string]
  // scheme HTTP: the edge serves it on its plain HTTP port, like the port `ssh -R` opens.
  listeners.push(await session.httpEndpoint().domain(name).scheme('HTTP').listenAndForward(upstream))
}
console.log(`ready ${listeners.map((l) => l.url()).join(' ')}`)

const keepAlive = setInterval(() => {}, 1 << 30) // the SDK's listeners do not hold Bun's event loop open
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, async () => {
    clearInterval(keepAlive)
    setTimeout(() => process.exit(0), 1000).unref() // the edge may be gone already
    for (const l of listeners) await l.close().catch(() => {})
    await session.close().catch(() => {})
    process.exit(0)
  })
