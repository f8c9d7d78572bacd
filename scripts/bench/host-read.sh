#!/usr/bin/env bash
# Read benchmark of the fanotify pre-content path on the host, with all its baselines, in one
# run, on the same images (Linux 6.14+, root, the scratch dir on ext4/xfs/btrfs):
#
#   scripts/bench/host-read.sh [options]
#
# Images (`ondine build`, zstd, blake3): A = one 256 MiB file of mixed text and random blocks
# plus 5000 small files (0.5-16 KiB) in nested dirs, 1 MiB chunks; B = the same big file alone,
# 4 KiB chunks (for cold 4 KiB random reads). `ondine unpack` writes each blob's verified
# uncompressed image: what a cache file holds once complete.
# Paths:
#   native EROFS      mount(2) of the bootstrap with device=<unpacked blob>: file-backed, no
#                     loop device (util-linux mount(8) would make one)
#   erofsfuse         erofs-utils 1.8.6 (scripts/build-erofs-utils.sh), --device=<unpacked blob>
#   C listener cold   scripts/bench/host-read/clistener.c: FAN_CLASS_PRE_CONTENT group,
#                     FAN_PRE_ACCESS marks on fresh sparse cache files before the mount, each
#                     event filled by pread from the unpacked blob + pwrite through the event's
#                     fd, then FAN_ALLOW; one thread, no decode, no verify: the kernel path's floor
#   decode ceiling    ChunkReader (read, zstd, blake3) over image A's blob from the page cache,
#                     on one thread and on the decode pool with one thread per core
#                     (scripts/bench/decode/driver.ts)
#   Ondine            `ondine daemon` + `ondine mount --mode fanotify` with the local-dir source:
#                     cold, warm with the blob complete, warm with the blob half filled. Runs only
#                     when `ondine mount --help` lists --mode; otherwise says so and skips it.
# Workloads: sequential read of the big file (and of its first half), a walk reading all 5000
# small files (find | cat), N 4 KiB reads at random aligned offsets of image B's big file (fixed
# seed, one thread). Cold = page cache dropped (native, FUSE) or fresh sparse cache files (C
# listener, Ondine). Every path's bytes are checked against the source files (sha256 of the big
# file and of its first half, a digest over the small files, each random block): the script
# exits 1 when any path read wrong bytes.
#
# Options:
#   --work DIR        keep the tree, images and unpacked blobs in DIR and reuse them next time
#                     (default: a new dir under /var/tmp, removed afterwards)
#   --out DIR         results.json and helper logs (default: <work>/out)
#   --reps N          interleaved rounds of the repeatable measurements, best kept (default 5)
#   --reads N         random 4 KiB reads per run (default 2000)
#   --random-secs S   time cap per random-read run (default 20)
#   --no-setup        do not run scripts/setup.sh first (it installs packages, builds the addon
#                     and dist/)
#   --only LIST       measure only these workloads, comma separated: seq, half, walk, random
#                     (e.g. --only random,seq for quick interleaved before/after runs); the warm
#                     Ondine rows need all four, and the decode ceiling runs only with seq/half
#   --markdown        print the table as Markdown too (for BENCHMARKS.md)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
say() { printf 'host-read: %s\n' "$*" >&2; }
die() { printf 'host-read: error: %s\n' "$*" >&2; exit 2; }

work= out= reps=5 reads=2000 rsecs=20 setup=1 markdown=0 only=
while [ $# -gt 0 ]; do
  case $1 in
    --work) work=$2; shift 2 ;; --work=*) work=${1#*=}; shift ;;
    --out) out=$2; shift 2 ;; --out=*) out=${1#*=}; shift ;;
    --reps) reps=$2; shift 2 ;; --reps=*) reps=${1#*=}; shift ;;
    --reads) reads=$2; shift 2 ;; --reads=*) reads=${1#*=}; shift ;;
    --random-secs) rsecs=$2; shift 2 ;; --random-secs=*) rsecs=${1#*=}; shift ;;
    --only) only=$2; shift 2 ;; --only=*) only=${1#*=}; shift ;;
    --no-setup) setup=0; shift ;;
    --markdown) markdown=1; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
for v in reps reads rsecs; do [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--${v/rsecs/random-secs} wants a positive integer"; done
[[ -z $only || $only =~ ^(seq|half|walk|random)(,(seq|half|walk|random))*$ ]] || die "--only wants a comma-separated list of seq, half, walk, random"
[ "$(id -u)" -eq 0 ] || die "run as root (mounts, fanotify pre-content marks, drop_caches)"

started=$(date +%s)
cd "$ROOT"
if [ "$setup" = 1 ]; then
  say "bash scripts/setup.sh (packages, addon, dist/)"
  bash scripts/setup.sh >&2
fi
for f in dist/src/cli/main.js dist/scripts/bench/host-read/driver.js dist/scripts/bench/host-read/report.js \
  dist/scripts/bench/vm-read/make-data.js dist/scripts/bench/decode/driver.js build/Release/ondine.node; do
  [ -f "$f" ] || die "$f is missing: run bash scripts/setup.sh"
done
ONDINE=(node "$ROOT/dist/src/cli/main.js")
fuse_bin=$("$ROOT/scripts/build-erofs-utils.sh" | tail -n 1) || die "scripts/build-erofs-utils.sh failed"
[ -x "$fuse_bin/erofsfuse" ] || die "no erofsfuse in $fuse_bin"

# --- scratch dir and cleanup -------------------------------------------------------------------
keep_work=1
if [ -z "$work" ]; then
  work=$(mktemp -d /var/tmp/ondine-hostread.XXXXXX)
  keep_work=0
fi
mkdir -p "$work"
work=$(realpath "$work")
fstype=$(findmnt -n -o FSTYPE -T "$work" 2>/dev/null || stat -f -c %T "$work")
case $fstype in
  ext2/ext3|ext3|ext4|xfs|btrfs) ;;
  *) die "$work is on $fstype: pre-content marks need ext4, xfs or btrfs (tmpfs and overlayfs refuse them)" ;;
esac
drv=
cleanup() {
  local rc=$?
  # The driver first, if a signal ended this script while it measured.
  if [ -n "$drv" ] && kill -0 "$drv" 2>/dev/null; then kill -TERM "$drv" 2>/dev/null; wait "$drv" 2>/dev/null || true; fi
  # Helpers the driver started (listed in $work/pids; a negative id is a process group), if it
  # died before stopping them: only those whose leader's command line names this work dir, so
  # a reused id is left alone.
  signal_helpers() {
    local id
    while read -r id; do
      [ -n "$id" ] && [ -r "/proc/${id#-}/cmdline" ] && tr '\0' ' ' <"/proc/${id#-}/cmdline" | grep -qF "$work" && kill "-$1" -- "$id" 2>/dev/null || true
    done <"$work/pids"
  }
  if [ -f "$work/pids" ]; then
    signal_helpers TERM
    sleep 1
    signal_helpers KILL
    rm -f "$work/pids"
  fi
  awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  if [ "$keep_work" = 0 ]; then rm -rf "$work"; else rm -rf "$work/mnt" "$work/clistener" "$work/ondine"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
out=${out:-$work/out}
mkdir -p "$out"
out=$(realpath "$out")
rm -f "$out/results.json" "$work/pids"

# --- tree and images (reused when the inputs that made them are unchanged) ----------------------
stamp="gen=$(sha256sum "$ROOT/scripts/bench/vm-read/make-data.ts" | cut -c1-16) cli=$(git -C "$ROOT" rev-parse HEAD:src/build 2>/dev/null || echo unknown)"
if [ "$(cat "$work/.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$work/src" "$work/src-big" "$work/img-a" "$work/img-b" "$work/expected.json" "$work/.stamp"
  t0=$(date +%s)
  say "generating the tree (256 MiB file + 5000 small files)"
  node dist/scripts/bench/vm-read/make-data.js "$work/src" >"$work/expected.json"
  say "building image A (zstd, 1 MiB chunks)"
  "${ONDINE[@]}" build "$work/src" -o "$work/img-a" --compressor zstd --chunk-size 1M >&2
  mkdir -p "$work/src-big"
  ln -f "$work/src/big.bin" "$work/src-big/big.bin"
  say "building image B (the big file alone, zstd, 4 KiB chunks)"
  "${ONDINE[@]}" build "$work/src-big" -o "$work/img-b" --compressor zstd --chunk-size 4K >&2
  for i in a b; do
    say "unpacking image ${i^^}'s blob (verified, uncompressed)"
    "${ONDINE[@]}" unpack "$work/img-$i/bootstrap" --blobs "$work/img-$i/blobs" -o "$work/img-$i/unpacked" >&2
  done
  echo "$stamp" >"$work/.stamp"
  say "data and images ready in $(( $(date +%s) - t0 )) s"
fi
unpacked() {
  [ "$(find "$1/blobs" -type f | wc -l)" = 1 ] || die "expected one blob in $1/blobs"
  local u; u=$(find "$1/unpacked" -type f | head -n 1)
  [ -n "$u" ] || die "no unpacked blob in $1/unpacked"
  echo "$u"
}
ua=$(unpacked "$work/img-a")
ub=$(unpacked "$work/img-b")

mkdir -p "$work/bin"
clistener=
if command -v cc >/dev/null && cc -O2 -Wall -Wextra -o "$work/bin/hostread-clistener" "$ROOT/scripts/bench/host-read/clistener.c"; then
  clistener=$work/bin/hostread-clistener
else
  say "warning: could not compile clistener.c; the C listener baseline is skipped"
fi

# --- decode ceiling over image A's blob ---------------------------------------------------------
cores=$(nproc)
if [[ -z $only || $only =~ seq|half ]]; then
  say "decode ceiling: ChunkReader over image A's blob, one thread and $cores pool threads"
  node dist/scripts/bench/decode/driver.js "$work/img-a/bootstrap" "$work/img-a/blobs" --threads "0,$cores" --runs 3 --passes 2 --json >"$work/decode.json"
else
  echo null >"$work/decode.json"
fi

# --- the Ondine fanotify front end, when the CLI has it -----------------------------------------
ondine=false
if "${ONDINE[@]}" mount --help 2>/dev/null | grep -q -- '--mode'; then
  ondine=true
else
  echo "ondine fanotify path not available yet"
fi

# Disk bytes read per measurement come from the stat file of the device holding the work dir.
disk_stat=/sys/dev/block/$(stat -c '%Hd:%Ld' "$work")/stat
[ -r "$disk_stat" ] || disk_stat=
node -e '
  const fs = require("fs");
  const [cfgPath, repo, work, out, ua, ub, fuse, clistener, ondine, reads, rsecs, reps, diskStat, only] = process.argv.slice(1);
  const decode = JSON.parse(fs.readFileSync(work + "/decode.json", "utf8"));
  const image = (dir, unpacked) => ({ dir, bootstrap: dir + "/bootstrap", unpacked, size: fs.statSync(unpacked).size });
  fs.writeFileSync(cfgPath, JSON.stringify({
    repo, work, out, src: work + "/src", expected: JSON.parse(fs.readFileSync(work + "/expected.json", "utf8")),
    a: image(work + "/img-a", ua), b: image(work + "/img-b", ub), erofsfuse: fuse, ...(clistener ? { clistener } : {}),
    ondine: ondine === "true", reads: Number(reads), maxRandomSeconds: Number(rsecs), reps: Number(reps), ...(diskStat ? { diskStat } : {}),
    ...(decode ? { decode } : {}), ...(only ? { only: only.split(",") } : {}),
  }, null, 2));
' "$work/config.json" "$ROOT" "$work" "$out" "$ua" "$ub" "$fuse_bin/erofsfuse" "$clistener" "$ondine" "$reads" "$rsecs" "$reps" "$disk_stat" "$only"

say "measuring ($reps interleaved rounds)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# In the background and waited for, so that a signal reaches the trap at once.
set +e
node dist/scripts/bench/host-read/driver.js "$work/config.json" &
drv=$!
wait "$drv"
drv_rc=$?
drv=
set -e
[ -f "$out/results.json" ] || die "the driver wrote no results (exit $drv_rc; logs in $out)"

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "Host read benchmark (fanotify), $(date -u +%Y-%m-%dT%H:%MZ): Linux $(uname -r), $cores cores ($cpu_model), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, node $(node --version), scratch on $fstype; load average before / after the measurements: $load_before / $load_after"
echo "image A: 256 MiB file + 5000 small files, zstd, 1 MiB chunks, $(du -b "$work/img-a/blobs" | cut -f1 | awk '{ printf "%.1f MB", $1 / 1e6 }') compressed; image B: the big file alone, 4 KiB chunks"
set +e
node dist/scripts/bench/host-read/report.js "$out/results.json"
rep_rc=$?
[ "$markdown" = 1 ] && { echo; node dist/scripts/bench/host-read/report.js "$out/results.json" --markdown; }
set -e
say "total run time $(( $(date +%s) - started )) s; results in $out/results.json"
if [ "$drv_rc" -ne 0 ] || [ "$rep_rc" -ne 0 ]; then
  say "FAILED (driver exit $drv_rc, report exit $rep_rc)"
  exit 1
fi
