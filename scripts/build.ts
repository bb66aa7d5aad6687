// Compiles warren into one self-contained binary: dist/warren (or --outfile PATH), for this machine or
// --target (a Bun compile target such as bun-linux-arm64; Bun fetches that runtime from npm).
// `warren version` shows the version, the git commit and the build date baked in here.
import { parseArgs } from 'node:util'

const { values } = parseArgs({ args: Bun.argv.slice(2), options: { outfile: { type: 'string' }, target: { type: 'string' } } })
const outfile = values.outfile ?? 'dist/warren'
const started = performance.now()
const git = Bun.spawnSync(['git', 'rev-parse', '--short=12', 'HEAD'], { stderr: 'ignore' })
const dirty = Bun.spawnSync(['git', 'status', '--porcelain', '--untracked-files=no'], { stderr: 'ignore' }).stdout.toString().trim() !== ''
const commit = git.exitCode === 0 ? `${git.stdout.toString().trim()}${dirty ? '-dirty' : ''}` : 'unknown'
// SOURCE_DATE_EPOCH makes the date reproducible (reproducible-builds.org); otherwise: now.
const epoch = Number(process.env.SOURCE_DATE_EPOCH)
const date = (Number.isFinite(epoch) && epoch > 0 ? new Date(epoch * 1000) : new Date()).toISOString().replace(/\.\d+Z$/, 'Z')
const result = await Bun.build({
  entrypoints: ['src/main.ts'],
  minify: true,
  sourcemap: 'linked',
  // ssh2's optional native addon (CPU feature probe, a NAN module Bun cannot load): ssh2 requires it
  // inside try/catch and falls back to pure JS, so the binary leaves it out rather than fail to bundle it.
  external: ['cpu-features'],
  define: { WARREN_BUILD: JSON.stringify({ commit, date }) },
  compile: values.target ? { target: values.target as Bun.Build.CompileTarget, outfile } : { outfile },
})
if (!result.success) {
  for (const message of result.logs) console.error(message)
  process.exit(1)
}
console.log(`built ${outfile} (${values.target ?? 'this machine'}, commit ${commit}) in ${Math.round(performance.now() - started)} ms`)
