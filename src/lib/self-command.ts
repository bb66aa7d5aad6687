/**
 * The command line that starts this program again: a compiled binary is its own entry point; under
 * `bun src/main.ts` the script is passed again.
 */
export function selfCommand(): string[] {
  return Bun.main.startsWith('/$bunfs/') ? [process.execPath] : [process.execPath, Bun.main]
}
