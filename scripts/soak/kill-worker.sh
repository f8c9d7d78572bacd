#!/usr/bin/env bash
# Kill-worker soak of the fanotify path: the proof, at scale, that a crash of the Node worker
# never turns into silent zeros. One run on the host, as root (Linux 6.14+, an ext4 /var/tmp):
#
#   1. scripts/setup.sh (packages, npm ci, build), unless --no-setup (then only `npx tsc`)
#   2. two images built with `ondine build` (zstd, 1 MiB chunks) in a scratch dir on ext4:
#      one big file (--big-mib, default 512 MiB, ~2x compressible) and a tree of many small
#      files (--files, default 20000, 1-64 KiB in nested directories); sha256 of every file
#   3. `ondine daemon --mode fanotify --read-timeout 3000` (supervisor deadline 3 + 5 s), both
#      images mounted with `ondine mount` over an empty cache
#   4. readers without pause (a sequential reader and random-offset readers of the big file,
#      tree walkers hashing every file), each read classified right / EIO / WRONG against the
#      source, while the worker (status: workerPid) is SIGKILLed --kills times at random
#      intervals, each time waiting until the service is back (new workerPid) before the
#      next; the caches are started afresh (unmount, delete the cache files, mount) whenever a
#      reader has been through all its data, and at least every --recycle-every kills, so
#      reads stay cold; drop_caches now and then between those
#
# Fails (exit 1) on any WRONG read (zeros where the image has data, or any other bytes), any
# read error but EIO, any read blocked longer than the deadline + --slack-ms, a service not
# back within --back-timeout seconds, or a lost supervisor. Prints a summary: kills, reads
# ok / EIO / WRONG, max read latency, max time to service back, the supervisor's counters.
# Everything it starts or mounts is stopped and removed on exit, even on failure.
#
# Options:
#   --kills N            worker kills (default 50)
#   --gap MIN-MAX        random wait before each kill, ms (default 300-2000)
#   --read-timeout MS    the daemon's --read-timeout (default 3000; deadline = MS + 5000)
#   --slack-ms MS        a read may take deadline + this long (default 4000)
#   --back-timeout S     the service must answer with a new worker within S s (default 30)
#   --readers S,R,W      sequential, random and walking readers (default 1,2,2)
#   --recycle-every N    fresh caches at least every N kills (default 5)
#   --drop-every N       drop_caches every N kills when not recycling (default 3)
#   --big-mib N          size of the big file (default 512)
#   --files N            files in the tree (default 20000)
#   --seed N             seed of the kill intervals and random reads (default 1)
#   --work DIR           keep the sources and images in DIR and reuse them next time
#                        (default: a scratch dir under /var/tmp, removed at the end)
#   --no-setup           skip scripts/setup.sh (only `npx tsc -p tsconfig.json`)
#   --daemon-arg ARG     one more `ondine daemon` argument (repeatable); --daemon-arg=--no-supervisor
#                        is the negative control: the first kill must fail the run
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
say() { printf 'kill-worker: %s\n' "$*" >&2; }
die() { printf 'kill-worker: error: %s\n' "$*" >&2; exit 2; }

kills=50 gap=300-2000 read_timeout=3000 slack=4000 back_timeout=30 readers=1,2,2
recycle_every=5 drop_every=3 big_mib=512 files=20000 seed=1 work= setup=1
daemon_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --kills) kills=$2; shift 2 ;; --kills=*) kills=${1#*=}; shift ;;
    --gap) gap=$2; shift 2 ;; --gap=*) gap=${1#*=}; shift ;;
    --read-timeout) read_timeout=$2; shift 2 ;; --read-timeout=*) read_timeout=${1#*=}; shift ;;
    --slack-ms) slack=$2; shift 2 ;; --slack-ms=*) slack=${1#*=}; shift ;;
    --back-timeout) back_timeout=$2; shift 2 ;; --back-timeout=*) back_timeout=${1#*=}; shift ;;
    --readers) readers=$2; shift 2 ;; --readers=*) readers=${1#*=}; shift ;;
    --recycle-every) recycle_every=$2; shift 2 ;; --recycle-every=*) recycle_every=${1#*=}; shift ;;
    --drop-every) drop_every=$2; shift 2 ;; --drop-every=*) drop_every=${1#*=}; shift ;;
    --big-mib) big_mib=$2; shift 2 ;; --big-mib=*) big_mib=${1#*=}; shift ;;
    --files) files=$2; shift 2 ;; --files=*) files=${1#*=}; shift ;;
    --seed) seed=$2; shift 2 ;; --seed=*) seed=${1#*=}; shift ;;
    --work) work=$2; shift 2 ;; --work=*) work=${1#*=}; shift ;;
    --no-setup) setup=0; shift ;;
    --daemon-arg) daemon_args+=("$2"); shift 2 ;; --daemon-arg=*) daemon_args+=("${1#*=}"); shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
for v in kills read_timeout slack back_timeout recycle_every drop_every big_mib files seed; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--${v//_/-} wants a positive integer"
done
[[ $gap =~ ^([0-9]+)-([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -le "${BASH_REMATCH[2]}" ] || die "--gap wants MIN-MAX in ms"
gap_min=${BASH_REMATCH[1]} gap_max=${BASH_REMATCH[2]}
[[ $readers =~ ^([0-9]+),([0-9]+),([0-9]+)$ ]] || die "--readers wants S,R,W (three counts)"
n_seq=${BASH_REMATCH[1]} n_rand=${BASH_REMATCH[2]} n_walk=${BASH_REMATCH[3]}
[ "$(id -u)" -eq 0 ] || die "run as root (fanotify pre-content events, mounts)"

started=$(date +%s)
cd "$ROOT"
if [ "$setup" = 1 ]; then
  say "running scripts/setup.sh"
  bash scripts/setup.sh >&2
else
  say "compiling (npx tsc -p tsconfig.json)"
  npx tsc -p tsconfig.json >&2
fi
for f in dist/src/cli/main.js dist/scripts/soak/kill-worker/soak.js build/Release/ondine-supervisor; do
  [ -e "$f" ] || die "$f is missing: build first (npx node-gyp rebuild && npx tsc -p tsconfig.json)"
done
ONDINE=(node "$ROOT/dist/src/cli/main.js")

# --- scratch space, and the cleanup of everything this script starts ------------------------
keep_data=0
if [ -n "$work" ]; then
  mkdir -p "$work"
  work=$(realpath "$work")
  keep_data=1
else
  work=$(mktemp -d /var/tmp/ondine-soak.XXXXXX)
fi
[ "$(stat -f -c %T "$work")" = ext2/ext3 ] || say "warning: $work is on $(stat -f -c %T "$work"), not ext4: pre-content marks may be refused"
sock=$work/run/ondine.sock
run=$work/run-out
daemon_pid= soak_pid=
cleanup() {
  local rc=$?
  set +e
  if [ -n "$soak_pid" ] && kill -0 "$soak_pid" 2>/dev/null; then
    kill -TERM "$soak_pid" 2>/dev/null; wait "$soak_pid" 2>/dev/null
  fi
  if [ -n "$daemon_pid" ]; then
    if kill -0 "$daemon_pid" 2>/dev/null; then
      "${ONDINE[@]}" stop --force --socket "$sock" >/dev/null 2>&1
      for _ in $(seq 1 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    # The daemon was started in a session (and process group) of its own: the launcher,
    # the supervisor and every worker generation.
    kill -KILL -- "-$daemon_pid" 2>/dev/null
    wait "$daemon_pid" 2>/dev/null
  fi
  for m in "$work/mnt-big" "$work/mnt-tree"; do
    mountpoint -q "$m" 2>/dev/null && umount -l "$m"
  done
  if [ "$keep_data" = 1 ]; then
    rm -rf "$work/cache" "$work/run" "$work/mnt-big" "$work/mnt-tree"
    say "kept the sources, images and the run's logs in $work"
  else
    [ "$rc" -ne 0 ] && [ -f "$run/daemon.log" ] && { say "last lines of the daemon's log:"; tail -n 30 "$run/daemon.log" >&2; }
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- sources and images (reused with --work when nothing that made them changed) ------------
stamp="gen=$(sha256sum "$ROOT/scripts/soak/kill-worker/make-data.ts" | cut -c1-16) big=$big_mib files=$files"
if [ "$(cat "$work/.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$work/src" "$work/img-big" "$work/img-tree" "$work/expected.json" "$work/.stamp"
  say "writing the sources: a $big_mib MiB file and $files small files"
  node dist/scripts/soak/kill-worker/make-data.js "$work/src" --big-mib "$big_mib" --files "$files" >"$work/expected.json"
  say "building the images (zstd, 1 MiB chunks)"
  "${ONDINE[@]}" build "$work/src/src-big" -o "$work/img-big" --chunk-size 1M --compressor zstd >&2
  "${ONDINE[@]}" build "$work/src/src-tree" -o "$work/img-tree" --chunk-size 1M --compressor zstd >&2
  echo "$stamp" >"$work/.stamp"
fi

# --- the daemon and the mounts -------------------------------------------------------------
rm -rf "$work/cache" "$work/run" "$run"
mkdir -p "$work/cache" "$work/run" "$run" "$work/mnt-big" "$work/mnt-tree"
say "starting the daemon (--read-timeout $read_timeout: supervisor deadline $((read_timeout + 5000)) ms)"
setsid "${ONDINE[@]}" daemon --foreground --mode fanotify --cache-dir "$work/cache" --socket "$sock" \
  --read-timeout "$read_timeout" ${daemon_args[@]+"${daemon_args[@]}"} >"$run/daemon.log" 2>&1 </dev/null &
daemon_pid=$!
for _ in $(seq 1 300); do
  "${ONDINE[@]}" status --json --socket "$sock" >/dev/null 2>&1 && break
  kill -0 "$daemon_pid" 2>/dev/null || { tail -n 30 "$run/daemon.log" >&2; die "the daemon exited"; }
  sleep 0.1
done
"${ONDINE[@]}" status --json --socket "$sock" >/dev/null || die "the daemon did not answer in 30 s (log: $run/daemon.log)"
"${ONDINE[@]}" mount "$work/img-big" "$work/mnt-big" --mode fanotify --socket "$sock" --cache-dir "$work/cache" >&2
"${ONDINE[@]}" mount "$work/img-tree" "$work/mnt-tree" --mode fanotify --socket "$sock" --cache-dir "$work/cache" >&2

cat >"$run/config.json" <<JSON
{
  "socket": "$sock",
  "big": { "image": "$work/img-big", "mountpoint": "$work/mnt-big", "source": "$work/src/src-big" },
  "tree": { "image": "$work/img-tree", "mountpoint": "$work/mnt-tree", "source": "$work/src/src-tree" },
  "expected": "$work/expected.json",
  "kills": $kills, "minGapMs": $gap_min, "maxGapMs": $gap_max,
  "backTimeoutMs": $((back_timeout * 1000)), "slowMs": $((read_timeout + 5000 + slack)),
  "readers": { "seq": $n_seq, "random": $n_rand, "walk": $n_walk },
  "recycleEvery": $recycle_every, "dropEvery": $drop_every, "seed": $seed, "out": "$run"
}
JSON

# --- the soak ------------------------------------------------------------------------------
say "soaking: $kills kills; readers seq $n_seq, random $n_rand, walk $n_walk"
set +e
node dist/scripts/soak/kill-worker/soak.js "$run/config.json" >"$run/summary.txt" &
soak_pid=$!
wait "$soak_pid"
soak_rc=$?
soak_pid=
set -e

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "Kill-worker soak (fanotify), $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "machine: $(nproc) cores ($cpu), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r), node $(node --version)"
echo "images: $big_mib MiB file ($(du -sm --apparent-size "$work/img-big/blobs" | cut -f1) MiB compressed), $files files ($(du -sm --apparent-size "$work/src/src-tree" | cut -f1) MiB, $(du -sm --apparent-size "$work/img-tree/blobs" | cut -f1) MiB compressed); zstd, 1 MiB chunks"
echo "daemon: --read-timeout $read_timeout${daemon_args[*]+ ${daemon_args[*]}} (supervisor deadline $((read_timeout + 5000)) ms); read limit $((read_timeout + 5000 + slack)) ms; kill gaps $gap ms"
cat "$run/summary.txt"
say "total run time $(( $(date +%s) - started )) s"
if [ "$soak_rc" -ne 0 ]; then
  say "FAILED (soak exit $soak_rc; daemon log: $run/daemon.log$([ "$keep_data" = 1 ] || echo ', removed with the scratch dir'))"
  exit 1
fi
