#!/usr/bin/env bash
# Read benchmark of EROFS over fscache (cachefiles on-demand) against native EROFS and
# erofsfuse, all in one run of the QEMU test VM, same image, same guest kernel.
#
#   scripts/bench/vm-read.sh [options]
#
# Paths (in the guest):
#   fscache cold   `ondine daemon` with a local directory source (the compressed blobs copied
#                  to the guest's tmpfs), image mounted with `ondine mount` (mount -t erofs -o
#                  fsid=...), first read
#   fscache warm   the same mount after drop_caches: data comes from the cache files
#   native EROFS   the same bootstrap over the unpacked (uncompressed) blob, both on loop
#                  devices over files on the guest's ext4 disk (the one holding the cache files)
#   erofsfuse      erofs-utils 1.8.6 serving the same bootstrap with --device=<unpacked blob>
#   C daemon cold  the same kernel path served by a minimal single-threaded C daemon
#                  (scripts/bench/vm-read/cdaemon.c) from the unpacked blob on tmpfs: no
#                  decompression, no verification; the floor of the fscache path in this VM
# Workloads: sequential read of a 256 MiB file; a walk reading all 5000 files of a tree; 4 KiB
# reads at random aligned offsets of the big file (fixed seed, N reads or a time cap). Every
# path's bytes are checked against digests computed on the host: the script exits 1 when any
# path read wrong bytes. Absolute speeds under TCG mean little: read the ratios.
#
# Options:
#   --work DIR          keep the generated tree and images in DIR and reuse them next time
#                       (default: a temporary directory, removed afterwards)
#   --out DIR           results.json, daemon logs and profiles (default: <work>/out)
#   --reads N           random 4 KiB reads per path (default 2000)
#   --random-secs S     time cap per random-read run (default 20)
#   --reps N            repetitions of the warm, native and FUSE runs, interleaved; the best
#                       of each is reported (default 2; cold runs happen once by nature)
#   --small-chunk SIZE  chunk size of the second image used for one more cold random-read row
#                       (default 4K; "none" to skip)
#   --daemon-arg ARG    extra `ondine daemon` argument (repeatable, e.g. --daemon-arg=--amplify=0)
#   --parts LIST        run only these parts, comma separated: fscache (cold and warm
#                       sequential/walk/random), random (cold random rows), c (the minimal C
#                       daemon), native, fuse
#   --profile           CPU-profile the daemon (--cpu-prof) into <out>/prof
#   --no-build          do not run `npx tsc` first
#   --markdown          print the table as Markdown too (for BENCHMARKS.md)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
say() { printf 'vm-read: %s\n' "$*" >&2; }
die() { printf 'vm-read: error: %s\n' "$*" >&2; exit 2; }

work= out= parts= reps=2 reads=2000 rsecs=20 small=4K profile=false build=1 markdown=0
daemon_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --work) work=$2; shift 2 ;; --work=*) work=${1#*=}; shift ;;
    --out) out=$2; shift 2 ;; --out=*) out=${1#*=}; shift ;;
    --reads) reads=$2; shift 2 ;; --reads=*) reads=${1#*=}; shift ;;
    --reps) reps=$2; shift 2 ;; --reps=*) reps=${1#*=}; shift ;;
    --random-secs) rsecs=$2; shift 2 ;; --random-secs=*) rsecs=${1#*=}; shift ;;
    --small-chunk) small=$2; shift 2 ;; --small-chunk=*) small=${1#*=}; shift ;;
    --daemon-arg) daemon_args+=("$2"); shift 2 ;; --daemon-arg=*) daemon_args+=("${1#*=}"); shift ;;
    --parts) parts=$2; shift 2 ;; --parts=*) parts=${1#*=}; shift ;;
    --profile) profile=true; shift ;;
    --no-build) build=0; shift ;;
    --markdown) markdown=1; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ $reads =~ ^[1-9][0-9]*$ ]] || die "--reads wants a positive integer"
[[ $rsecs =~ ^[1-9][0-9]*$ ]] || die "--random-secs wants a positive integer"
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "--reps wants a positive integer"
[ "$(id -u)" -eq 0 ] || die "run as root (QEMU, mounts in the guest, loop devices)"

started=$(date +%s)
cd "$ROOT"
if [ "$build" = 1 ]; then
  say "compiling (npx tsc -p tsconfig.json)"
  npx tsc -p tsconfig.json >&2 || say "warning: tsc reported errors; using what it emitted"
fi
for f in dist/src/cli/main.js dist/scripts/bench/vm-read/guest.js dist/scripts/bench/vm-read/make-data.js dist/scripts/bench/vm-read/report.js; do
  [ -f "$f" ] || die "$f is missing: build with npx tsc -p tsconfig.json"
done
ONDINE=(node "$ROOT/dist/src/cli/main.js")

fuse_bin=$("$ROOT/scripts/build-erofs-utils.sh" | tail -n 1) || die "scripts/build-erofs-utils.sh failed"
[ -x "$fuse_bin/erofsfuse" ] || die "no erofsfuse in $fuse_bin"

if [ -n "$work" ]; then
  mkdir -p "$work"
  work=$(realpath "$work")
else
  work=$(mktemp -d /tmp/ondine-vmread.XXXXXX)
  trap 'rm -rf "$work"' EXIT
fi
out=${out:-$work/out}
mkdir -p "$out"
out=$(realpath "$out")
rm -f "$out/results.json"

# --- data and images (reused when the inputs that made them are unchanged) -----------------
stamp="gen=$(sha256sum "$ROOT/scripts/bench/vm-read/make-data.ts" | cut -c1-16) small=$small"
if [ "$(cat "$work/.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$work/src" "$work/src-big" "$work/img" "$work/img-small" "$work/expected.json" "$work/.stamp"
  say "generating the tree (256 MiB file + 5000 small files)"
  node dist/scripts/bench/vm-read/make-data.js "$work/src" >"$work/expected.json"
  say "building the image (zstd, 1 MiB chunks)"
  "${ONDINE[@]}" build "$work/src" -o "$work/img" >&2
  say "unpacking its blob for the native and FUSE paths"
  "${ONDINE[@]}" unpack "$work/img/bootstrap" --blobs "$work/img/blobs" -o "$work/img/unpacked" >&2
  if [ "$small" != none ]; then
    mkdir -p "$work/src-big"
    ln -f "$work/src/big.bin" "$work/src-big/big.bin"
    say "building the big file alone with $small chunks (random-read row)"
    "${ONDINE[@]}" build "$work/src-big" -o "$work/img-small" --chunk-size "$small" >&2
  fi
  echo "$stamp" >"$work/.stamp"
fi
# The guest mounts a tmpfs over /var/cache, where the erofs-utils build lives: take a copy.
mkdir -p "$work/bin"
cp -f "$fuse_bin/erofsfuse" "$work/bin/erofsfuse"
erofsfuse=$work/bin/erofsfuse
# The in-run floor of the kernel path: a minimal C daemon (no decompression, no verification).
cdaemon=
if command -v gcc >/dev/null; then
  gcc -O2 -Wall -o "$work/bin/vmread-cdaemon" "$ROOT/scripts/bench/vm-read/cdaemon.c" && cdaemon=$work/bin/vmread-cdaemon
fi
[ -n "$cdaemon" ] || say "warning: no C compiler; the C daemon baseline is skipped"
unpacked=$(find "$work/img/unpacked" -type f | head -n 1)
[ -n "$unpacked" ] || die "no unpacked blob in $work/img/unpacked"
[ "$(find "$work/img/blobs" -type f | wc -l)" = 1 ] || die "expected one blob in $work/img/blobs"

small_json=null
if [ "$small" != none ]; then
  small_bytes=$(node -e 'const m=/^(\d+)([kKmM]?)/.exec(process.argv[1]);console.log(Number(m[1])*({k:1024,m:1<<20}[m[2].toLowerCase()]??1))' "$small")
  small_json=$(printf '{"bootstrap":"%s","blobDir":"%s","chunkSize":%s}' "$work/img-small/bootstrap" "$work/img-small/blobs" "$small_bytes")
fi
node -e '
  const [cfgPath, repo, work, out, unpacked, fuse, cdaemon, reads, rsecs, reps, profile, small, parts, ...dargs] = process.argv.slice(1);
  const cfg = {
    repo, src: work + "/src", expected: JSON.parse(require("fs").readFileSync(work + "/expected.json", "utf8")),
    image: { bootstrap: work + "/img/bootstrap", blobDir: work + "/img/blobs", unpacked },
    ...(small === "null" ? {} : { small: JSON.parse(small) }),
    erofsfuse: fuse, ...(cdaemon ? { cdaemon } : {}), reads: Number(reads), maxRandomSeconds: Number(rsecs), reps: Number(reps), out, profile: profile === "true", daemonArgs: dargs,
    parts: parts ? parts.split(",") : [],
  };
  require("fs").writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
' "$work/config.json" "$ROOT" "$work" "$out" "$unpacked" "$erofsfuse" "$cdaemon" "$reads" "$rsecs" "$reps" "$profile" "$small_json" "$parts" ${daemon_args[@]+"${daemon_args[@]}"}

# --- the VM run ------------------------------------------------------------------------------
say "booting the VM (TCG); the guest's progress follows"
set +e
ONDINE_VM_SHARE=$out bash "$ROOT/vm/run.sh" --timeout 1500 --mem 3072 --cache-size 4096 \
  "$ROOT/scripts/bench/vm-read/guest.sh" "$ROOT" "$work/config.json" >&2
vm_rc=$?
set -e
[ -f "$out/results.json" ] || die "the guest wrote no results (vm/run.sh exit $vm_rc; logs in $out)"

echo "VM read benchmark, $(date -u +%Y-%m-%dT%H:%MZ): guest kernel $(node -e 'console.log(require(process.argv[1]).kernel)' "$out/results.json"), QEMU TCG, 2 vCPUs"
echo "image: 256 MiB file + 5000 small files, zstd, 1 MiB chunks$([ "$small" != none ] && echo "; second image: the big file alone, $small chunks")"
set +e
node dist/scripts/bench/vm-read/report.js "$out/results.json" --expected "$work/expected.json"
rep_rc=$?
[ "$markdown" = 1 ] && { echo; node dist/scripts/bench/vm-read/report.js "$out/results.json" --expected "$work/expected.json" --markdown; }
set -e
say "total run time $(( $(date +%s) - started )) s; results in $out/results.json"
if [ "$vm_rc" -ne 0 ] || [ "$rep_rc" -ne 0 ]; then
  say "FAILED (guest exit $vm_rc, report exit $rep_rc)"
  exit 1
fi
