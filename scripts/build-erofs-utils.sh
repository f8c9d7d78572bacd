#!/usr/bin/env bash
# Builds erofs-utils 1.8.6 (fsck.erofs that extracts leading-hole files right, erofsfuse for the
# FUSE baseline, mkfs.erofs --tar, zstd) from Debian trixie's source package, once per machine,
# and prints the directory holding its binaries. Debian bookworm only ships 1.5, and trixie's
# binary packages need a newer glibc, so the source is compiled here.
#
# - Idempotent: a finished build (marked by .complete) is reused; nothing is downloaded again.
# - Concurrent callers (test files, benchmarks) serialise on an flock; the loser waits, then
#   finds the build done.
# - The system's apt state is never touched: the trixie source list and its package lists live
#   under the cache dir (overriding Dir::State::Lists too, or apt rewrites the system's lists).
# - The source comes from the Debian mirror this system's apt already uses (the first archive
#   URI of /etc/apt/sources.list.d/*.sources, else of /etc/apt/sources.list); none -> an error.
#
# Usage: scripts/build-erofs-utils.sh            -> prints e.g. /var/cache/ondine-erofs-utils/1.8.6/bin
# Env:   ONDINE_EROFS_UTILS_CACHE  cache root (default /var/cache/ondine-erofs-utils)
#        ONDINE_EROFS_UTILS_NO_APT=1  do not apt-get install build dependencies (fail if missing)
#        ONDINE_EROFS_UTILS_MIRROR  a Debian mirror URI to use instead of the system's
# Build chatter goes to <cache>/<version>/build.log and stderr; stdout is only the bin dir.
set -euo pipefail

VERSION=1.8.6
DEBVER=1.8.6-1
CACHE_ROOT="${ONDINE_EROFS_UTILS_CACHE:-/var/cache/ondine-erofs-utils}"
DEST="$CACHE_ROOT/$VERSION"
BIN="$DEST/bin"
TOOLS=(fsck.erofs mkfs.erofs dump.erofs erofsfuse)

complete() {
  [ -f "$DEST/.complete" ] || return 1
  for t in "${TOOLS[@]}"; do [ -x "$BIN/$t" ] || return 1; done
}

if complete; then echo "$BIN"; exit 0; fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.lock-$VERSION"
flock 9
# Someone else may have finished while this caller waited for the lock.
if complete; then echo "$BIN"; exit 0; fi

log() { echo "build-erofs-utils: $*" >&2; }
rm -rf "$DEST"
mkdir -p "$DEST"
LOG="$DEST/build.log"
: >"$LOG"
run() { "$@" >>"$LOG" 2>&1 || { log "failed: $* (see $LOG)"; tail -n 30 "$LOG" >&2; exit 1; }; }

# The first enabled archive URI (not a -security one: trixie's sources live in the main archive).
configured_mirror() {
  local f uri
  for f in "$APT_ETC"/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '
      function flush() { if (uri != "" && enabled && !found) { print uri; found = 1 } uri = ""; enabled = 1 }
      BEGIN { enabled = 1 }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]*#/ { next }
      tolower($1) == "enabled:" && tolower($2) == "no" { enabled = 0 }
      tolower($1) == "uris:" { for (i = 2; i <= NF; i++) if ($i !~ /-security\/?$/) { uri = $i; break } }
      END { flush() }
    ' "$f")
    if [ -n "$uri" ]; then echo "$uri"; return 0; fi
  done
  [ -f "$APT_ETC/sources.list" ] || return 0
  awk '
    $1 == "deb" || $1 == "deb-src" {
      i = 2
      if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      if ($i != "" && $i !~ /-security\/?$/) { print $i; exit }
    }
  ' "$APT_ETC/sources.list"
}

APT_ETC=/etc/apt
MIRROR="${ONDINE_EROFS_UTILS_MIRROR:-$(configured_mirror)}"
if [ -z "$MIRROR" ]; then
  log "no Debian mirror is configured for apt (no URIs: line in /etc/apt/sources.list.d/*.sources, no deb line in /etc/apt/sources.list); configure one, or set ONDINE_EROFS_UTILS_MIRROR"
  exit 1
fi

DEPS=(build-essential autoconf automake libtool pkg-config uuid-dev libdeflate-dev liblzma-dev
  libxxhash-dev libselinux1-dev liblz4-dev libzstd-dev libfuse3-dev fuse3)
missing=()
for p in "${DEPS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "${ONDINE_EROFS_UTILS_NO_APT:-}" = 1 ] || [ "$(id -u)" != 0 ]; then
    log "missing build dependencies: ${missing[*]}"; exit 1
  fi
  log "installing build dependencies: ${missing[*]}"
  run apt-get update -qq
  DEBIAN_FRONTEND=noninteractive run apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

WORK="$DEST/work"
mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/archives/partial" "$WORK/src"
echo "deb-src $MIRROR trixie main" >"$WORK/apt/sources.list"
APTO=(-o "Dir::Etc::SourceList=$WORK/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$WORK/apt/lists" -o "Dir::Cache::Archives=$WORK/apt/archives")
log "fetching the erofs-utils $DEBVER source package (trixie) from $MIRROR"
run apt-get "${APTO[@]}" update
(cd "$WORK/src" && run apt-get "${APTO[@]}" source --download-only "erofs-utils=$DEBVER")
ORIG="$WORK/src/erofs-utils_$VERSION.orig.tar.gz"
[ -f "$ORIG" ] || { log "source tarball $ORIG missing after download"; exit 1; }
run tar -xzf "$ORIG" -C "$WORK/src"
SRC="$WORK/src/erofs-utils-$VERSION"

log "compiling (log: $LOG)"
(
  cd "$SRC"
  run ./autogen.sh
  run ./configure --enable-fuse --with-libzstd --with-libdeflate --prefix="$DEST/prefix"
  run make -j"$(nproc)"
)
mkdir -p "$BIN"
for t in fsck/fsck.erofs mkfs/mkfs.erofs dump/dump.erofs fuse/erofsfuse; do
  install -m 0755 "$SRC/$t" "$BIN/"
done
# A quick self-check: the binaries run and say which version they are.
"$BIN/fsck.erofs" -V 2>&1 | grep -q "$VERSION" || { log "fsck.erofs -V does not report $VERSION"; exit 1; }
rm -rf "$WORK"
touch "$DEST/.complete"
log "erofs-utils $VERSION ready in $BIN"
echo "$BIN"
