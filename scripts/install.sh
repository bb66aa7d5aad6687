#!/bin/sh
# Installs the warren binary for this machine from a warren release, after checking its SHA-256.
#   curl -fsSL <release>/install.sh | sh
#   WARREN_RELEASE=<url or directory> WARREN_PREFIX=<dir> sh install.sh
# WARREN_RELEASE: where the release files are (an https:// URL or a local directory; default: the
# directory this script is in). WARREN_PREFIX: installs to $WARREN_PREFIX/bin (default /usr/local,
# or ~/.local when /usr/local/bin is not writable).
set -eu

fail() { echo "install.sh: $*" >&2; exit 1; }

release=${WARREN_RELEASE:-$(cd "$(dirname "$0")" 2>/dev/null && pwd)}

os=$(uname -s)
arch=$(uname -m)
case "$os" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) fail "no warren build for $os (builds: linux, darwin; windows: download warren-windows-x64.exe)" ;;
esac
case "$arch" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) fail "no warren build for $arch (builds: x64, arm64)" ;;
esac
libc=""
# Alpine and other musl systems cannot run the glibc build.
if [ "$os" = linux ] && { [ -e /etc/alpine-release ] || ldd --version 2>&1 | grep -qi musl; }; then libc=-musl; fi
file="warren-$os-$arch$libc"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fetch() {
  case "$release" in
    http://* | https://*) curl -fsSL "$release/$1" -o "$tmp/$1" || fail "cannot download $release/$1" ;;
    *) cp "$release/$1" "$tmp/$1" 2>/dev/null || fail "no $1 in $release" ;;
  esac
}
fetch SHA256SUMS
fetch "$file"

expected=$(awk -v f="$file" '$2 == f || $2 == "*"f { print $1 }' "$tmp/SHA256SUMS")
[ -n "$expected" ] || fail "$file is not listed in SHA256SUMS"
if command -v sha256sum >/dev/null 2>&1; then actual=$(sha256sum "$tmp/$file" | awk '{print $1}')
else actual=$(shasum -a 256 "$tmp/$file" | awk '{print $1}'); fi
[ "$actual" = "$expected" ] || fail "checksum mismatch for $file (expected $expected, got $actual): not installed"

prefix=${WARREN_PREFIX:-}
if [ -z "$prefix" ]; then
  if [ -w /usr/local/bin ]; then prefix=/usr/local; else prefix=$HOME/.local; fi
fi
mkdir -p "$prefix/bin"
chmod 755 "$tmp/$file"
mv "$tmp/$file" "$prefix/bin/warren"
echo "installed $file ($actual) as $prefix/bin/warren"
"$prefix/bin/warren" version
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "add $prefix/bin to your PATH" ;; esac
