import { CODES, WarrenError } from '../lib/errors.ts'
import { CONFIG_USAGE, HTTP_USAGE, START_USAGE, TCP_USAGE, TLS_USAGE, configCommand, httpCommand, startCommand, tcpCommand, tlsCommand } from './agent.ts'
import { keepFreedPages } from './allocator.ts'
import { API_USAGE, apiCommand } from './api.ts'
import { caCommand } from './ca.ts'
import { CERTS_USAGE, certsCommand } from './certs.ts'
import { policyCommand } from './policy.ts'
import { schemaCommand } from './schema.ts'
import { serveCommand } from './serve.ts'
import { versionCommand } from './version.ts'

export interface Command {
  name: string
  usage: string
  short: string
  /** Relays traffic for as long as it runs: started with the allocator tuned for that (./allocator.ts). */
  relays?: true
  run(args: string[]): number | Promise<number>
}

/** Every subcommand; `warren --help` is generated from this list. */
export const COMMANDS: readonly Command[] = [
  {
    name: 'serve',
    usage: 'warren serve [--config FILE] [--policies DIR] [--certs DIR] [--http ADDR] [--ssh ADDR] [--domain NAME] [--workers N|auto] [--log-level L] [--log-format json|text] [--no-request-log]',
    short: 'run the edge: listeners, the endpoint table from policies/, hot reload; --workers N: N processes sharing the ports',
    relays: true,
    run: serveCommand,
  },
  {
    name: 'policy',
    usage: "warren policy check [DIR] [--config FILE] | test FILE|DIR... | explain FILE --request 'GET /path' [-H 'name: value']...",
    short: 'validate a policies directory (file:line:col per error), run policy test fixtures, explain a request',
    run: policyCommand,
  },
  {
    name: 'schema',
    usage: 'warren schema [policy|server] [--out FILE]',
    short: 'print the JSON Schema of policies files (or warren.yaml) for editor autocompletion',
    run: schemaCommand,
  },
  { name: 'http', usage: HTTP_USAGE, relays: true, short: 'agent: open an http(s) endpoint on an edge and forward it to a local upstream', run: httpCommand },
  { name: 'tcp', usage: TCP_USAGE, relays: true, short: 'agent: open a tcp endpoint on an edge and forward it to a local upstream', run: tcpCommand },
  { name: 'tls', usage: TLS_USAGE, relays: true, short: 'agent: open a tls endpoint (passthrough, or terminated by the agent with --crt/--key) on an edge and forward it to a local upstream', run: tlsCommand },
  { name: 'start', usage: START_USAGE, relays: true, short: 'agent: start endpoints from an ngrok-v3-style config file', run: startCommand },
  { name: 'config', usage: CONFIG_USAGE, short: 'agent config file: check, add-authtoken, add-server', run: configCommand },
  { name: 'api', usage: API_USAGE, short: 'call the REST API: endpoints list|get|create|update|delete, status (JSON out)', run: apiCommand },
  {
    name: 'ca',
    usage: 'warren ca path [--config FILE] [--certs DIR]',
    short: 'print the development CA certificate path (creates the CA if missing); trust it with curl --cacert',
    run: caCommand,
  },
  { name: 'certs', usage: CERTS_USAGE, short: 'list certificates (your files, ACME, dev) with issuer, expiry and status; --json', run: certsCommand },
  { name: 'version', usage: 'warren version', short: 'print the version', run: versionCommand },
]

export function helpText(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length))
  return [
    'warren: a self-hosted edge gateway in the spirit of ngrok',
    '',
    'Usage: warren <command> [flags]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.short}`),
    '',
    'Details:',
    // Multi-line usages (warren api) keep their own indentation under the two-space margin.
    ...COMMANDS.flatMap((c) => c.usage.split('\n').map((line) => `  ${line}`)),
    '',
  ].join('\n')
}

/** Dispatches argv to a command and turns failures into an exit code and one clear message. */
export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(helpText())
    return name ? 0 : 2
  }
  if (name === '--version' || name === '-v') return versionCommand()
  const command = COMMANDS.find((c) => c.name === name)
  if (!command) {
    process.stderr.write(`warren: unknown command "${name}"\n\n${helpText()}`)
    return 2
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.usage}\n\n${command.short}\n`)
    return 0
  }
  if (command.relays) keepFreedPages(argv)
  try {
    return await command.run(rest)
  } catch (err) {
    // Config issues already end in their `[code]` (file:line:col: … [ERR_WARREN_1001]).
    if (err instanceof WarrenError) process.stderr.write(`warren ${name}: ${err.message.endsWith(`[${err.code}]`) ? err.message : `${err.message} [${err.code}]`}\n`)
    // Every parseArgs complaint (unknown option, `--url` without its value…) is a usage error, not a crash.
    else if (String((err as { code?: unknown } | null)?.code).startsWith('ERR_PARSE_ARGS_'))
      process.stderr.write(`warren ${name}: ${(err as Error).message} [${CODES.USAGE}]\nUsage: ${command.usage}\n`)
    // A failure nobody anticipated: one line with a code; the stack only when asked for.
    else
      process.stderr.write(
        `warren ${name}: ${err instanceof Error ? err.message : String(err)} [${CODES.INTERNAL}]\n${process.env.WARREN_DEBUG && err instanceof Error ? `${err.stack}\n` : 'Set WARREN_DEBUG=1 for the stack trace.\n'}`,
      )
    return 1
  }
}
