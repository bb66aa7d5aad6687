/**
 * Installs a Debian package with apt-get when `have()` says its tools are missing and we are root
 * (first from the current lists, then after `apt-get update`); returns `have()` afterwards.
 */
export function ensureDebianPackage(pkg: string, have: () => boolean): boolean {
  if (have()) return true
  if (process.getuid?.() === 0 && Bun.which('apt-get')) {
    Bun.spawnSync(['apt-get', '-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '-qq', pkg], { stdout: 'ignore', stderr: 'ignore' })
    if (!have()) {
      Bun.spawnSync(['apt-get', 'update', '-qq'], { stdout: 'ignore', stderr: 'ignore' })
      Bun.spawnSync(['apt-get', '-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '-qq', pkg], { stdout: 'ignore', stderr: 'ignore' })
    }
  }
  return have()
}
