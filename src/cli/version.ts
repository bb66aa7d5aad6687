import pkg from '../../package.json' with { type: 'json' }

export const VERSION: string = pkg.version

export function versionCommand(): number {
  console.log(`warren ${VERSION} (bun ${Bun.version})`)
  return 0
}
