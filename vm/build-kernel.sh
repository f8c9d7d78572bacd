#!/usr/bin/env bash
# Build the Ondine test-VM kernel (cachefiles on-demand + EROFS fscache) once per machine.
#
#   vm/build-kernel.sh                -> prints the cached bzImage path as the last line of stdout
#   vm/build-kernel.sh --cached-only  -> the same when the kernel is cached; else exit 3 at once
#                                        (tests use it: a build never runs inside a test's timeout)
#
# Source: Debian's linux-source-6.1. Base: `make allnoconfig`, then vm/kernel.config merged with
# `merge_config.sh -n`, then `make olddefconfig`. Every option the fragment asks for is checked
# in the final .config; a dropped option fails the build with the list of what is missing.
#
# Cache: ${ONDINE_VM_CACHE:-/var/cache/ondine-vm}/kernel-<key>/bzImage, where <key> is the
# sha256 of the fragment, this script's BUILD_VERSION and the linux-source package version.
# Concurrent runs are serialised with flock; the finished directory appears by rename only.
#
# Environment: ONDINE_VM_CACHE (cache root), ONDINE_VM_KEEP_BUILD=1 (keep the build tree),
# ONDINE_VM_VERBOSE=1 (stream make output to stderr instead of only the log file),
# ONDINE_VM_QUIET_CACHED=1 (say nothing on stderr when the kernel is already cached).
set -euo pipefail

# Bump when a change to this script changes the kernel it produces.
BUILD_VERSION=1

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FRAGMENT=$HERE/kernel.config
CACHE=${ONDINE_VM_CACHE:-/var/cache/ondine-vm}
SRC_PKG=linux-source-6.1
SRC_TARBALL=/usr/src/linux-source-6.1.tar.xz

log() { printf 'build-kernel: %s\n' "$*" >&2; }
die() { printf 'build-kernel: error: %s\n' "$*" >&2; exit 1; }

pkg_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

# Installs the given Debian packages that are not installed yet.
ensure_pkgs() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}; run as root or install them"
  log "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    log "apt-get install failed; refreshing package lists and retrying"
    apt-get update >&2
    apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
      || die "could not install ${missing[*]}"
  fi
}

cached_only=0
case ${1:-} in
  --cached-only) cached_only=1 ;;
  '') ;;
  *) die "unknown argument $1 (usage: vm/build-kernel.sh [--cached-only])" ;;
esac

[ -f "$FRAGMENT" ] || die "config fragment $FRAGMENT not found"

[ "$cached_only" = 1 ] && ! pkg_installed "$SRC_PKG" \
  && { log "the VM kernel is not built ($SRC_PKG is not even installed): run scripts/setup.sh or vm/build-kernel.sh"; exit 3; }
ensure_pkgs "$SRC_PKG"
[ -f "$SRC_TARBALL" ] || die "$SRC_TARBALL missing although $SRC_PKG is installed"
SRC_VERSION=$(dpkg-query -W -f='${Version}' "$SRC_PKG")

KEY=$( { cat "$FRAGMENT"; printf 'build-version=%s\nsource=%s %s\n' \
         "$BUILD_VERSION" "$SRC_PKG" "$SRC_VERSION"; } | sha256sum | cut -d' ' -f1)
OUT=$CACHE/kernel-$KEY

if [ -f "$OUT/bzImage" ]; then
  [ "${ONDINE_VM_QUIET_CACHED:-0}" = 1 ] || log "cached kernel: $OUT"
  echo "$OUT/bzImage"
  exit 0
fi
if [ "$cached_only" = 1 ]; then
  if [ -e "$CACHE/kernel-$KEY.lock" ] && ! flock -n "$CACHE/kernel-$KEY.lock" true 2>/dev/null; then
    log "the VM kernel is being built right now (lock $CACHE/kernel-$KEY.lock); wait for it, e.g. run vm/build-kernel.sh"
  else
    log "the VM kernel is not built: run scripts/setup.sh or vm/build-kernel.sh first"
  fi
  exit 3
fi

mkdir -p "$CACHE"
LOCK=$CACHE/kernel-$KEY.lock
exec 9>"$LOCK"
if ! flock -n 9; then
  log "another build of this kernel is running; waiting for it (lock $LOCK)"
  flock 9
fi
# The other run may have finished it while we waited.
if [ -f "$OUT/bzImage" ]; then
  log "cached kernel: $OUT"
  echo "$OUT/bzImage"
  exit 0
fi

ensure_pkgs build-essential bc flex bison libelf-dev libssl-dev xz-utils

# Build trees left by interrupted runs (any key) take ~1.5 GB each: remove those whose
# lock nobody holds.
for stale in "$CACHE"/build-*; do
  [ -e "$stale" ] || continue
  k=${stale##*/build-}; k=${k%.log}
  [ "$k" = "$KEY" ] && continue
  if ( flock -n 8 ) 8>"$CACHE/kernel-$k.lock"; then
    log "removing stale $stale"
    rm -rf "$stale"
  fi
done

BUILD=$CACHE/build-$KEY
BUILD_LOG=$CACHE/build-$KEY.log
rm -rf "$BUILD" "$OUT.tmp"
mkdir -p "$BUILD"
: >"$BUILD_LOG"
START=$(date +%s)

# Runs a build step with its output in the log; on failure shows the log's tail.
run_step() {
  local what=$1; shift
  log "$what"
  if [ "${ONDINE_VM_VERBOSE:-0}" = 1 ]; then
    "$@" 2>&1 | tee -a "$BUILD_LOG" >&2 || { die "$what failed (log: $BUILD_LOG)"; }
  elif ! "$@" >>"$BUILD_LOG" 2>&1; then
    tail -n 40 "$BUILD_LOG" >&2
    die "$what failed (log: $BUILD_LOG)"
  fi
}

run_step "unpacking $SRC_TARBALL ($SRC_PKG $SRC_VERSION) into $BUILD" \
  tar -xJf "$SRC_TARBALL" -C "$BUILD" --strip-components=1
cd "$BUILD"
run_step "make allnoconfig" make allnoconfig
run_step "merging $FRAGMENT (merge_config.sh -n)" \
  scripts/kconfig/merge_config.sh -n .config "$FRAGMENT"
run_step "make olddefconfig" make olddefconfig

# merge_config.sh only warns about options it could not set; check every request ourselves.
log "verifying the options requested by $(basename "$FRAGMENT")"
"$HERE/check-kernel-config.sh" "$FRAGMENT" .config \
  || die "fix $FRAGMENT (the final .config is $BUILD/.config)"

JOBS=$(nproc)
log "make -j$JOBS bzImage (about 10 minutes on 2 idle cores; log: $BUILD_LOG)"
if [ "${ONDINE_VM_VERBOSE:-0}" = 1 ]; then
  make -j"$JOBS" bzImage 2>&1 | tee -a "$BUILD_LOG" >&2 || die "kernel build failed (log: $BUILD_LOG)"
else
  make -j"$JOBS" bzImage >>"$BUILD_LOG" 2>&1 &
  make_pid=$!
  trap 'kill "$make_pid" 2>/dev/null || true' EXIT
  make_start=$SECONDS
  next=30
  while kill -0 "$make_pid" 2>/dev/null; do
    sleep 2
    if [ $((SECONDS - make_start)) -ge $next ]; then
      log "  ... $((SECONDS - make_start))s, $(find . -name '*.o' -newer .config 2>/dev/null | wc -l) objects built"
      next=$((next + 30))
    fi
  done
  if ! wait "$make_pid"; then
    trap - EXIT
    tail -n 40 "$BUILD_LOG" >&2
    die "kernel build failed (log: $BUILD_LOG)"
  fi
  trap - EXIT
fi
[ -f arch/x86/boot/bzImage ] || die "make finished but arch/x86/boot/bzImage is missing"

END=$(date +%s)
mkdir -p "$OUT.tmp"
cp arch/x86/boot/bzImage "$OUT.tmp/bzImage"
cp .config "$OUT.tmp/config"
cp "$FRAGMENT" "$OUT.tmp/kernel.config"
cp "$BUILD_LOG" "$OUT.tmp/build.log"
{
  echo "kernel=$(make -s kernelrelease)"
  echo "source=$SRC_PKG $SRC_VERSION"
  echo "build_version=$BUILD_VERSION"
  echo "build_seconds=$((END - START))"
  echo "jobs=$JOBS"
  echo "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$OUT.tmp/info"
mv "$OUT.tmp" "$OUT"
cd /
rm -f "$BUILD_LOG"
if [ "${ONDINE_VM_KEEP_BUILD:-0}" != 1 ]; then rm -rf "$BUILD"; fi
log "built in $((END - START))s: $OUT"
echo "$OUT/bzImage"
