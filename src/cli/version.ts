import pkg from '../../package.json' with { type: 'json' }

export const VERSION: string = pkg.version

/** Set by scripts/build.ts (`define`) in compiled binaries; absent when running from source. */
declare const WARREN_BUILD: { commit: string; date: string } | undefined

export function versionCommand(): number {
  const build = typeof WARREN_BUILD === 'undefined' ? 'from source' : `commit ${WARREN_BUILD.commit}, built ${WARREN_BUILD.date}`
  console.log(`warren ${VERSION} (${build}, bun ${Bun.version})`)
  return 0
}
