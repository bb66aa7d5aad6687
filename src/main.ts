import { run } from './cli/index.ts'

const code = await run(process.argv.slice(2))
// A command that failed half-way (e.g. `serve` after its first listeners opened) must not linger.
if (code !== 0) process.exit(code)
process.exitCode = code
