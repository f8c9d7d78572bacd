#!/usr/bin/env bash
# Memory of every long-running Ondine process (issue 15, item 4): VmRSS and VmHWM from /proc,
# against an idle `node -e` started in the same run (the floor any Node process pays).
#
#   scripts/bench/memory.sh [options]
#
# Steps (root; a local docker-registry on 127.0.0.1, the host's fanotify path):
#   1. baseline: `node -e` with a timer, idle for --settle seconds;
#   2. `ondine daemon` (the C supervisor and its node worker), idle after start-up;
#   3. `ondine mount <ref>` of a lazy image built from --source and pushed to the registry,
#      sampled after the mount;
#   4. a cold read of every file of the mount (tar to /dev/null), the daemon's processes
#      sampled every 100 ms (peak VmRSS and threads: decode threads are threads of the worker),
#      then sampled after it;
#   5. `ondine snapshotter` against that daemon, idle after start-up, then after --calls
#      Prepare/Remove pairs and a List over its gRPC socket.
# Also timed, once each (start-up, for the record; cli-start.sh is the benchmark of the CLI's):
# `node -e 0`, `ondine daemon` until it answers, `ondine snapshotter` until it logs ready.
# Results: <work>/results.jsonl, one line per process and moment; the tables on stdout.
#
# Options:
#   --source DIR   tree the image is built from (default /usr/lib/python3.11, else /usr/lib/python3)
#   --work DIR     scratch dir on ext4/xfs/btrfs (default: a new dir under /var/tmp, removed afterwards)
#   --settle SEC   idle time before an idle sample (default 3)
#   --calls N      snapshotter Prepare/Remove pairs (default 200)
#   --markdown     print the table as Markdown too (for BENCHMARKS.md)
#   --no-setup     do not run scripts/setup.sh first
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
say() { printf 'memory-bench: %s\n' "$*" >&2; }
die() { printf 'memory-bench: error: %s\n' "$*" >&2; exit 2; }

source_dir= work= settle=3 calls=200 markdown=0 setup=1
while [ $# -gt 0 ]; do
  case $1 in
    --source) source_dir=$2; shift 2 ;; --source=*) source_dir=${1#*=}; shift ;;
    --work) work=$2; shift 2 ;; --work=*) work=${1#*=}; shift ;;
    --settle) settle=$2; shift 2 ;; --settle=*) settle=${1#*=}; shift ;;
    --calls) calls=$2; shift 2 ;; --calls=*) calls=${1#*=}; shift ;;
    --markdown) markdown=1; shift ;;
    --no-setup) setup=0; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ $settle =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--settle wants seconds"
[[ $calls =~ ^[0-9]+$ ]] || die "--calls wants a number"
[ "$(id -u)" -eq 0 ] || die "run as root (fanotify, mounts)"
if [ -z "$source_dir" ]; then
  for d in /usr/lib/python3.11 /usr/lib/python3; do [ -d "$d" ] && { source_dir=$d; break; }; done
fi
[ -d "$source_dir" ] || die "no source tree (--source DIR)"

cd "$ROOT"
if [ "$setup" = 1 ]; then
  say "bash scripts/setup.sh (packages, addon, dist/)"
  bash scripts/setup.sh >&2
fi
for f in dist/src/cli/main.js dist/scripts/bench/memory/procs.js dist/scripts/bench/memory/report.js dist/scripts/bench/memory/snapshot-calls.js; do
  [ -f "$f" ] || die "$f is missing: run bash scripts/setup.sh (or npx tsc -p tsconfig.json)"
done
for t in docker-registry curl tar; do command -v "$t" >/dev/null || die "$t is missing: run bash scripts/setup.sh"; done
CLI=(node "$ROOT/dist/src/cli/main.js")
P=$ROOT/dist/scripts/bench/memory/procs.js

keep_work=1
if [ -z "$work" ]; then work=$(mktemp -d /var/tmp/ondine-mbench.XXXXXX); keep_work=0; fi
mkdir -p "$work"; work=$(realpath "$work")
fstype=$(findmnt -n -o FSTYPE -T "$work" 2>/dev/null || stat -f -c %T "$work")
case $fstype in
  ext2/ext3|ext3|ext4|xfs|btrfs) ;;
  *) [ "$keep_work" = 0 ] && rm -rf "$work"; die "$work is on $fstype: the daemon's cache dir needs ext4, xfs or btrfs (fanotify pre-content marks)" ;;
esac
results=$work/results.jsonl; : >"$results"
sock=$work/ondine.sock
pids=()   # process groups this script started (setsid), stopped at exit
cleanup() {
  local rc=$? p
  set +e
  awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
  [ -S "$sock" ] && "${CLI[@]}" stop --force --socket "$sock" >/dev/null 2>&1
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ "$keep_work" = 0 ]; then rm -rf "$work"; else rm -rf "$work"/reg "$work"/cache "$work"/mnt "$work"/image "$work"/snap; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sample() { local label=$1; shift; node "$P" sample "$label" "$@" >>"$results"; }
idle() { sleep "$settle"; }

# --- registry and image -------------------------------------------------------------------------
reg_port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
mkdir -p "$work/reg"
cat >"$work/reg/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/reg/data
http:
  addr: 127.0.0.1:$reg_port
EOF
setsid docker-registry serve "$work/reg/config.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do curl -fsS -o /dev/null "http://127.0.0.1:$reg_port/v2/" 2>/dev/null && break; sleep 0.1; done
curl -fsS -o /dev/null "http://127.0.0.1:$reg_port/v2/" || die "docker-registry did not start (log $work/registry.log)"
ref=127.0.0.1:$reg_port/bench/memory:1
say "building $source_dir ($(du -sh "$source_dir" | cut -f1)) and pushing it to $ref"
"${CLI[@]}" build -o "$work/image" --push "$ref" "$source_dir" >"$work/build.log" 2>&1 || die "ondine build failed (log $work/build.log)"

# --- 1: baseline ----------------------------------------------------------------------------------
t0=$(date +%s%N)
node -e 0
echo "{\"label\":\"startup\",\"role\":\"baseline\",\"sec\":$(( ($(date +%s%N) - t0) / 1000000 ))e-3}" >>"$results"
node -e 'setInterval(() => {}, 1 << 30)' &
base=$!
pids+=($base)
idle
sample idle "baseline=$base"
kill "$base"; wait "$base" 2>/dev/null || true

# --- 2: daemon idle -------------------------------------------------------------------------------
mkdir -p "$work/cache" "$work/mnt"
t0=$(date +%s%N)
line=$("${CLI[@]}" daemon --cache-dir "$work/cache" --socket "$sock" 2>>"$work/daemon.log") || die "ondine daemon did not start (log $work/daemon.log)"
echo "{\"label\":\"startup\",\"role\":\"daemon\",\"sec\":$(( ($(date +%s%N) - t0) / 1000000 ))e-3}" >>"$results"
dpid=$(sed -n 's/.*(pid \([0-9]*\)).*/\1/p' <<<"$line")
[ -n "$dpid" ] || die "no pid in: $line"
roles=()
# By the supervisor's name, not node's: Node 24 names its main thread MainThread.
if [[ $(cat "/proc/$dpid/comm") != ondine-sup* ]]; then
  roles=("worker=$dpid")   # cachefiles only: one process
else
  wpid=
  for _ in $(seq 100); do wpid=$(pgrep -P "$dpid" | head -n 1 || true); [ -n "$wpid" ] && break; sleep 0.1; done
  [ -n "$wpid" ] || die "no worker under the supervisor $dpid"
  roles=("supervisor=$dpid" "worker=$wpid")
fi
idle
sample idle "${roles[@]}"

# --- 3, 4: mount, cold read -----------------------------------------------------------------------
"${CLI[@]}" mount --socket "$sock" "$ref" "$work/mnt" >&2 || die "ondine mount failed (log $work/daemon.log)"
idle
sample mounted "${roles[@]}"
node "$P" watch reading 100 "${roles[@]}" >>"$results" &
watcher=$!
t0=$(date +%s.%N)
bytes=$(tar -cf - -C "$work/mnt" . | wc -c)
say "cold read: $bytes bytes of tar in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f s", b - a }')"
kill -TERM "$watcher"; wait "$watcher" || true
idle
sample after "${roles[@]}"

# --- 5: snapshotter -------------------------------------------------------------------------------
mkdir -p "$work/snap"
t0=$(date +%s%N)
setsid "${CLI[@]}" snapshotter --socket "$work/snap.sock" --root "$work/snap" --daemon-socket "$sock" >"$work/snapshotter.log" 2>&1 &
spid=$!
pids+=($spid)
for _ in $(seq 3000); do grep -q 'snapshotter ready' "$work/snapshotter.log" 2>/dev/null && break; kill -0 "$spid" 2>/dev/null || break; sleep 0.01; done
grep -q 'snapshotter ready' "$work/snapshotter.log" || die "the snapshotter did not start (log $work/snapshotter.log)"
echo "{\"label\":\"startup\",\"role\":\"snapshotter\",\"sec\":$(( ($(date +%s%N) - t0) / 1000000 ))e-3}" >>"$results"
idle
sample idle "snapshotter=$spid"
node "$ROOT/dist/scripts/bench/memory/snapshot-calls.js" "$work/snap.sock" "$calls" >&2 || die "snapshotter calls failed (log $work/snapshotter.log)"
idle
sample calls "snapshotter=$spid"

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); source $source_dir; node $(node --version)"
node "$ROOT/dist/scripts/bench/memory/report.js" "$results" $([ "$markdown" = 1 ] && echo --markdown)
