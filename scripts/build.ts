// Compiles warren into one self-contained binary: dist/warren (or --outfile PATH).
import { parseArgs } from 'node:util'

const { values } = parseArgs({ args: Bun.argv.slice(2), options: { outfile: { type: 'string' }, target: { type: 'string' } } })
const outfile = values.outfile ?? 'dist/warren'
const started = performance.now()
const result = await Bun.build({
  entrypoints: ['src/main.ts'],
  minify: true,
  sourcemap: 'linked',
  // ssh2's optional native addon (CPU feature probe, a NAN module Bun cannot load): ssh2 requires it
  // inside try/catch and falls back to pure JS, so the binary leaves it out rather than fail to bundle it.
  external: ['cpu-features'],
  compile: values.target ? { target: values.target as Bun.Build.CompileTarget, outfile } : { outfile },
})
if (!result.success) {
  for (const message of result.logs) console.error(message)
  process.exit(1)
}
console.log(`built ${outfile} in ${Math.round(performance.now() - started)} ms`)
