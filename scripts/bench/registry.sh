#!/usr/bin/env bash
# Registry (lazy pull) benchmarks: Ondine's lazy images against the plain OCI image they were
# converted from, in one run against the same local docker-registry, at loopback speed and
# over two emulated links (root, Linux with htb):
#
#   scripts/bench/registry.sh [options]
#
# Image: scripts/bench/registry/make-images.sh (cached in /var/cache/ondine-bench): app1 =
# debootstrap minbase + python3 and large libraries (>1 GB unpacked) + a small app layer; app2
# = the same base + a different small top layer. Pushed as plain OCI (skopeo) to bench/plain
# and converted with `ondine convert` to lazy images.
# Links: loopback = the registry's own port; 1g = 1 Gbit/s each way, 2 ms round trip; 100m =
# 100 Mbit/s, 20 ms. A delay proxy (registry/delay-proxy.ts) adds half the round trip per
# direction (and one round trip before a new connection's first request: the handshake), and
# tc htb classes cap each direction on the proxy's port (registry/link.sh). Checked first:
# curl of the largest layer blob (MB/s) and a request on a kept-alive connection (RTT).
# Benchmarks (every row with requests, blob GETs and bytes the registry served):
#   a  time to first command (app1, and pysmall when the layout has it), `python3 -c 'import json, sqlite3'` in a chroot: lazy = `ondine
#      mount <ref>` (daemon already running, fresh cache dir, page cache dropped) + the command;
#      lazy-api = the same mount as a POST /v1/mounts on the daemon's socket (curl), as the
#      snapshotter makes it (no CLI start-up), + the command;
#      full pull = manifest + every layer `curl | gzip -d | tar -x` into its own dir (one after
#      another, and all at once), an overlay of the layer dirs, the command. Aim: lazy <= 10% of
#      the faster full pull on 1g.
#   b  cold sequential reads through a fresh lazy mount: the image's largest file (dd), and every
#      regular file of the largest layer in that layer's tar order (cat), against curl of as
#      many bytes of the same blob as the read fetched, same link. Aim: >= 0.8x curl's speed.
#      Each read's bytes are checked against the pulled image afterwards.
#   c  bytes uploaded for app2 after app1 (same repo): `ondine convert` (app2 with and without
#      --chunk-dict <lazy app1>) against `skopeo copy` of the plain images, counted at a
#      no-delay port of the proxy.
#   d  `ondine convert` of app1 (registry -> registry, new repo each run) against `skopeo copy`
#      of the same image between repos, loopback (skopeo with an empty blob-info cache, so it
#      uploads rather than mounts blobs seen in earlier runs), and against the CPU floor: every
#      layer `curl | gzip -d | zstd -T<cores> -3 > /dev/null`. Aims: >= 0.8 of the floor's
#      speed, >= 0.3 of skopeo's. Convert's own bytes and time per stage (its --json) beside it.
#      BENCH_CONVERT_BEFORE=<dir of another built checkout> adds its convert to the same rounds.
# Lazy steps run only when the CLI lists `convert` and `ondine mount --help` takes a reference;
# otherwise the baselines run alone and the report says what was skipped. Results:
# <work>/out/results.jsonl (one line per step; kept with --work), the registry's access log and
# the daemon's log beside it.
#
# Options:
#   --cache DIR     image cache (default /var/cache/ondine-bench)
#   --work DIR      scratch dir on ext4 (default: a new dir under /var/tmp, removed afterwards)
#   --links LIST    comma list of loopback,1g,100m (default all)
#   --only LIST     comma list of link,a,b,c,d (default all)
#   --runs N        rounds of a, b and d (interleaved), best kept, all printed (default 2)
#   --markdown      print the tables as Markdown too (for BENCHMARKS.md)
#   --no-setup      do not run scripts/setup.sh first
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
say() { printf 'registry-bench: %s\n' "$*" >&2; }
die() { printf 'registry-bench: error: %s\n' "$*" >&2; exit 2; }

cache=/var/cache/ondine-bench work= links=loopback,1g,100m only=link,a,b,c,d runs=2 markdown=0 setup=1
while [ $# -gt 0 ]; do
  case $1 in
    --cache) cache=$2; shift 2 ;; --cache=*) cache=${1#*=}; shift ;;
    --work) work=$2; shift 2 ;; --work=*) work=${1#*=}; shift ;;
    --links) links=$2; shift 2 ;; --links=*) links=${1#*=}; shift ;;
    --only) only=$2; shift 2 ;; --only=*) only=${1#*=}; shift ;;
    --runs) runs=$2; shift 2 ;; --runs=*) runs=${1#*=}; shift ;;
    --markdown) markdown=1; shift ;;
    --no-setup) setup=0; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs wants a positive integer"
for p in ${only//,/ }; do
  case $p in link|a|b|c|d) ;; *) die "--only takes link,a,b,c,d (got \"$p\")" ;; esac
done
[ "$(id -u)" -eq 0 ] || die "run as root (tc, mounts, chroot, drop_caches)"
want() { [[ ",$only," == *",$1,"* ]]; }
has_link() { [[ ",$links," == *",$1,"* ]]; }

started=$(date +%s)
cd "$ROOT"
if [ "$setup" = 1 ]; then
  say "bash scripts/setup.sh (packages, addon, dist/)"
  bash scripts/setup.sh >&2
fi
for f in dist/src/cli/main.js dist/scripts/bench/registry/delay-proxy.js dist/scripts/bench/registry/measure.js \
  dist/scripts/bench/registry/report.js; do
  [ -f "$f" ] || die "$f is missing: run bash scripts/setup.sh (or npx tsc -p tsconfig.json)"
done
for t in docker-registry skopeo umoci curl tc gzip tar chroot; do command -v "$t" >/dev/null || die "$t is missing: run bash scripts/setup.sh"; done
CLI=(node "$ROOT/dist/src/cli/main.js")
M=$ROOT/dist/scripts/bench/registry/measure.js
# shellcheck source=registry/link.sh
. "$ROOT/scripts/bench/registry/link.sh"

# What this checkout's CLI can do: convert, and mount by reference (its help names a reference).
lazy=1
"${CLI[@]}" --help 2>/dev/null | grep -qE '^ +convert ' || { lazy=0; say "ondine convert is not available: lazy steps skipped"; }
if [ "$lazy" = 1 ] && ! "${CLI[@]}" mount --help 2>/dev/null | grep -qiE 'reference|registry|<ref>'; then
  lazy=0; say "ondine mount <ref> is not available: lazy steps skipped"
fi
chunk_dict=0
[ "$lazy" = 1 ] && "${CLI[@]}" convert --help 2>/dev/null | grep -q -- '--chunk-dict' && chunk_dict=1

layout=$("$ROOT/scripts/bench/registry/make-images.sh" "$cache" | tail -n 1)
[ -f "$layout/index.json" ] || die "no OCI layout at $layout"

# --- scratch dir, registry, proxy, links, cleanup -----------------------------------------------
keep_work=1
if [ -z "$work" ]; then work=$(mktemp -d /var/tmp/ondine-rbench.XXXXXX); keep_work=0; fi
mkdir -p "$work"; work=$(realpath "$work")
fstype=$(findmnt -n -o FSTYPE -T "$work" 2>/dev/null || stat -f -c %T "$work")
case $fstype in
  ext2/ext3|ext3|ext4|xfs|btrfs) ;;
  *) [ "$keep_work" = 0 ] && rm -rf "$work"; die "$work is on $fstype: the daemon's cache dir needs ext4, xfs or btrfs (fanotify pre-content marks)" ;;
esac
out=$work/out; mkdir -p "$out"
results=$out/results.jsonl; : >"$results"
pids=()        # process groups this script started (setsid), stopped at exit
dpid=          # the running ondine daemon's group
sock=$work/ondine.sock
cleanup() {
  local rc=$?
  set +e
  awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
  [ -n "$dpid" ] && stop_daemon
  local p
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  link_down
  if [ "$keep_work" = 0 ]; then rm -rf "$work"; else rm -rf "$work"/pull "$work"/mnt "$work"/cache.* "$work"/reg; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
reg_port=$(free_port)
mkdir -p "$work/reg"
cat >"$work/reg/config.yml" <<EOF
version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $work/reg/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$reg_port
EOF
reglog=$out/registry.log
setsid docker-registry serve "$work/reg/config.yml" >"$reglog" 2>&1 &
pids+=($!)
for _ in $(seq 300); do curl -fsS -o /dev/null "http://127.0.0.1:$reg_port/v2/" 2>/dev/null && break; sleep 0.1; done
curl -fsS -o /dev/null "http://127.0.0.1:$reg_port/v2/" || die "docker-registry did not start (log $reglog)"

setsid node "$ROOT/dist/scripts/bench/registry/delay-proxy.js" "127.0.0.1:$reg_port" 0,2,20 >"$work/proxy.json" 2>"$out/proxy.log" &
pids+=($!)
# Its line is complete once it ends with a newline; Node can take seconds to start on a busy machine.
for _ in $(seq 600); do [ "$(tail -c 1 "$work/proxy.json" 2>/dev/null | od -An -c | tr -d ' ')" = '\n' ] && break; sleep 0.1; done
read -r p_count p_1g p_100m ctl < <(node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); console.log(...j.ports, j.control)' "$work/proxy.json") \
  || die "the delay proxy did not start (log $out/proxy.log)"
# Shaping (tc on lo) only when a shaped link is measured: a loopback-only run (e.g. part d) can
# then run beside another run that holds lo's qdisc.
if has_link 1g || has_link 100m; then
  link_init
  link_cap 10 "$p_1g" 1gbit 256k
  link_cap 20 "$p_100m" 100mbit 64k
fi
declare -A LINK_PORT=([loopback]=$reg_port [1g]=$p_1g [100m]=$p_100m)
declare -A LINK_RTT=([loopback]=0 [1g]=2 [100m]=20)
link_list=()
for l in loopback 1g 100m; do has_link "$l" && link_list+=("$l"); done
[ ${#link_list[@]} -gt 0 ] || die "--links names none of loopback,1g,100m"
say "registry 127.0.0.1:$reg_port; proxy ports: count $p_count, 1g $p_1g, 100m $p_100m"

# --- helpers ------------------------------------------------------------------------------------
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
snap() { node "$M" snap "$reglog" "$ctl" >"$work/snap.json"; }
record() { node "$M" record "$reglog" "$ctl" "$work/snap.json" "$@" >>"$results"; }
last() { tail -n 1 "$results" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s)[process.argv[1]];console.log(v===undefined?"":v)})' "$1"; }
# skopeo remembers where it has seen each blob (a cache under /var/lib/containers/cache for
# root) and mounts a blob from another repo of the same registry instead of uploading it: the
# copies measured here get an empty cache of their own (a tmpfs over it in a private mount
# namespace), so every run moves the bytes a first push would.
skopeo_fresh() {
  mkdir -p /var/lib/containers/cache
  unshare -m sh -c 'mount -t tmpfs tmpfs /var/lib/containers/cache && exec skopeo "$@"' sh "$@"
}
ENVCMD=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1)
first_command() { "${ENVCMD[@]}" chroot "$1" python3 -c 'import json, sqlite3'; }

start_daemon() {
  local cache_dir=$work/cache.$1
  rm -rf "$cache_dir"; mkdir -p "$cache_dir"
  setsid "${CLI[@]}" daemon --foreground --cache-dir "$cache_dir" --socket "$sock" >>"$out/daemon.log" 2>&1 &
  dpid=$!
  local i
  for i in $(seq 300); do
    "${CLI[@]}" status --socket "$sock" >/dev/null 2>&1 && return 0
    kill -0 "$dpid" 2>/dev/null || break
    sleep 0.1
  done
  die "ondine daemon did not start (log $out/daemon.log)"
}
stop_daemon() {
  "${CLI[@]}" stop --force --socket "$sock" >/dev/null 2>&1 || kill -TERM -- "-$dpid" 2>/dev/null || true
  local i
  for i in $(seq 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$dpid" 2>/dev/null || true
  wait "$dpid" 2>/dev/null || true
  dpid=
}

# Manifest of a tag in the OCI layout, and its layers' digests and sizes.
manifest_of() {
  node -e '
    const fs = require("fs"); const [dir, tag] = process.argv.slice(1);
    const idx = JSON.parse(fs.readFileSync(dir + "/index.json", "utf8"));
    const m = idx.manifests.find((x) => x.annotations && x.annotations["org.opencontainers.image.ref.name"] === tag);
    if (!m) { console.error("no tag " + tag); process.exit(1); }
    const man = JSON.parse(fs.readFileSync(dir + "/blobs/" + m.digest.replace(":", "/"), "utf8"));
    for (const l of man.layers) console.log(l.digest, l.size);
  ' "$layout" "$1"
}
mapfile -t LAYERS1 < <(manifest_of app1 | cut -d' ' -f1)
mapfile -t SIZES1 < <(manifest_of app1 | cut -d' ' -f2)
comp1=0; for s in "${SIZES1[@]}"; do comp1=$((comp1 + s)); done
biggest_layer=$(manifest_of app1 | sort -k2,2n | tail -n 1 | cut -d' ' -f1)
# Part a also runs the small python image (2 layers) when the layout has it.
a_images=(app1)
if manifest_of pysmall >/dev/null 2>&1; then
  a_images+=(pysmall)
  mapfile -t LAYERS_pysmall < <(manifest_of pysmall | cut -d' ' -f1)
else
  say "the image layout has no pysmall tag (older make-images.sh): part a runs app1 only"
fi
LAYERS_app1=("${LAYERS1[@]}")

say "pushing the plain images (skopeo copy oci: -> bench/plain)"
for t in app1 app2 "${a_images[@]:1}"; do
  skopeo copy -q --dest-tls-verify=false "oci:$layout:$t" "docker://127.0.0.1:$reg_port/bench/plain:$t" >&2
done
src_ref=127.0.0.1:$reg_port/bench/plain:app1

echo "config: links ${link_list[*]}; runs $runs; lazy steps $([ "$lazy" = 1 ] && echo on || echo 'off (CLI lacks convert or mount <ref>)'); app1 ${#LAYERS1[@]} layers, $comp1 bytes compressed" >&2

# --- link check ---------------------------------------------------------------------------------
if want link; then
  for l in "${link_list[@]}"; do
    p=${LINK_PORT[$l]}
    drop
    snap
    # One big blob, then two small requests on one kept-alive connection (the second's time to
    # first byte is a round trip plus the registry's own time).
    w=$(curl -fsS -o /dev/null -w '%{time_total} %{size_download}\n' "http://127.0.0.1:$p/v2/bench/plain/blobs/$biggest_layer")
    r=$(curl -fsS -o /dev/null -w '%{time_starttransfer}\n' "http://127.0.0.1:$p/v2/" -o /dev/null -w '%{time_starttransfer}\n' "http://127.0.0.1:$p/v2/" | tail -n 1)
    record bench=link link="$l" sec="${w% *}" blobBytes="${w#* }" rttSec="$r"
    say "link $l: $(awk -v s="${w% *}" -v b="${w#* }" 'BEGIN { printf "%.1f MB/s", b / s / 1e6 }'), request on a kept-alive connection $(awk -v r="$r" 'BEGIN { printf "%.1f ms", r * 1000 }')"
  done
fi

# --- d: convert vs skopeo copy and the CPU floor (loopback; target through the counting proxy port)
# The floor: what convert cannot avoid doing on this machine, without chunking, hashing or
# uploading: every layer fetched, ungzipped and zstd-3 compressed on every core, one layer after
# another (curl | gzip -d | zstd -T2 -3 > /dev/null).
lazy_ref=
if [ "$lazy" = 1 ] && want d; then
  command -v zstd >/dev/null || die "zstd is missing (the CPU floor of d): run bash scripts/setup.sh"
  cpu_floor() {
    local l
    for l in "${LAYERS1[@]}"; do
      curl -fsS "http://127.0.0.1:$reg_port/v2/bench/plain/blobs/$l" | gzip -d | zstd -q -T"$(nproc)" -3 >/dev/null
    done
  }
  for run in $(seq "$runs"); do
    drop; snap; t0=$(now)
    skopeo_fresh copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$src_ref" "docker://127.0.0.1:$p_count/bench/copy-$run:app1" >&2
    record bench=d variant=skopeo run="$run" sec="$(since "$t0")" srcBytes="$comp1"
    drop; snap; t0=$(now)
    cpu_floor
    record bench=d variant=floor run="$run" sec="$(since "$t0")" srcBytes="$comp1"
    drop; snap; t0=$(now)
    "${CLI[@]}" convert --json "$src_ref" "127.0.0.1:$p_count/bench/lazy-$run:app1" >"$out/convert-d$run.json" 2>"$out/convert-d$run.log" \
      || { tail -n 20 "$out/convert-d$run.log" >&2; die "ondine convert failed (log $out/convert-d$run.log)"; }
    record bench=d variant=convert run="$run" sec="$(since "$t0")" srcBytes="$comp1" json="$out/convert-d$run.json"
    if [ -n "${BENCH_CONVERT_BEFORE:-}" ]; then
      # Another checkout's convert (built, e.g. the commit before a change), in the same rounds.
      drop; snap; t0=$(now)
      node "$BENCH_CONVERT_BEFORE/dist/src/cli/main.js" convert "$src_ref" "127.0.0.1:$p_count/bench/before-$run:app1" >"$out/convert-before-d$run.log" 2>&1 \
        || { tail -n 20 "$out/convert-before-d$run.log" >&2; die "the other checkout's convert failed (log $out/convert-before-d$run.log)"; }
      record bench=d variant=convert-before run="$run" sec="$(since "$t0")" srcBytes="$comp1"
    fi
  done
  lazy_ref=bench/lazy-1:app1
fi
if [ "$lazy" = 1 ] && [ -z "$lazy_ref" ] && { want a || want b; }; then
  say "converting app1 for the mounts"
  "${CLI[@]}" convert "$src_ref" "127.0.0.1:$reg_port/bench/lazy:app1" >"$out/convert.log" 2>&1 || die "ondine convert failed (log $out/convert.log)"
  lazy_ref=bench/lazy:app1
fi
if [ "$lazy" = 1 ] && want a && [ "${#a_images[@]}" -gt 1 ]; then
  say "converting pysmall for the mounts"
  "${CLI[@]}" convert "127.0.0.1:$reg_port/bench/plain:pysmall" "127.0.0.1:$reg_port/bench/lazy:pysmall" >"$out/convert-pysmall.log" 2>&1 || die "ondine convert of pysmall failed (log $out/convert-pysmall.log)"
fi

# --- c: bytes uploaded for the second of two images sharing a base ----------------------------
if want c; then
  for t in app1 app2; do
    snap
    skopeo_fresh copy -q --dest-tls-verify=false "oci:$layout:$t" "docker://127.0.0.1:$p_count/bench/plain-c:$t" >&2
    record bench=c variant=plain image="$t"
  done
  if [ "$lazy" = 1 ]; then
    for t in app1 app2; do
      extra=()
      [ "$t" = app2 ] && [ "$chunk_dict" = 1 ] && extra=(--chunk-dict "127.0.0.1:$p_count/bench/lazy-c:app1")
      snap
      "${CLI[@]}" convert "${extra[@]}" "127.0.0.1:$reg_port/bench/plain:$t" "127.0.0.1:$p_count/bench/lazy-c:$t" >"$out/convert-c-$t.log" 2>&1 \
        || { tail -n 20 "$out/convert-c-$t.log" >&2; die "ondine convert failed (log $out/convert-c-$t.log)"; }
      record bench=c variant=convert image="$t" chunkDict="${#extra[@]}"
    done
    if [ "$chunk_dict" = 1 ]; then
      # The same second push without --chunk-dict, into a repo holding the same lazy app1
      # (copied as it is, not counted): what dedup against the first image saves.
      skopeo copy -q --preserve-digests --src-tls-verify=false --dest-tls-verify=false \
        "docker://127.0.0.1:$reg_port/bench/lazy-c:app1" "docker://127.0.0.1:$reg_port/bench/lazy-n:app1" >&2
      snap
      "${CLI[@]}" convert "127.0.0.1:$reg_port/bench/plain:app2" "127.0.0.1:$p_count/bench/lazy-n:app2" >"$out/convert-c-nodict.log" 2>&1 \
        || { tail -n 20 "$out/convert-c-nodict.log" >&2; die "ondine convert failed (log $out/convert-c-nodict.log)"; }
      record bench=c variant=convert-nodict image=app2 chunkDict=0
    fi
  fi
fi

# --- a: time to first command -------------------------------------------------------------------
# Both set step_sec: seconds since $t0 until the image was ready (pulled or mounted), before
# the command.
step_sec=
# A full pull into $work/pull: each layer streamed through gunzip and tar into its own dir
# (containerd's overlay snapshotter keeps one per layer), then a read-only overlay of them.
full_pull() {
  local mode=$1 port=$2 tag=${3:-app1} dir=$work/pull i pidsl=()
  local -n layers=LAYERS_$tag
  rm -rf "$dir"; mkdir -p "$dir/root"
  curl -fsS -o "$dir/manifest.json" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$port/v2/bench/plain/manifests/$tag" || return 1
  for i in "${!layers[@]}"; do
    mkdir -p "$dir/l$i"
    if [ "$mode" = seq ]; then
      curl -fsS "http://127.0.0.1:$port/v2/bench/plain/blobs/${layers[i]}" | gzip -d | tar -x --numeric-owner -C "$dir/l$i" || return 1
    else
      (set -o pipefail; curl -fsS "http://127.0.0.1:$port/v2/bench/plain/blobs/${layers[i]}" | gzip -d | tar -x --numeric-owner -C "$dir/l$i") &
      pidsl+=($!)
    fi
  done
  for i in "${pidsl[@]}"; do wait "$i" || return 1; done
  local lower=
  for (( i=${#layers[@]}-1; i>=0; i-- )); do lower+=${lower:+:}$dir/l$i; done
  mount -t overlay overlay -o "lowerdir=$lower" "$dir/root" || return 1
  step_sec=$(since "$t0")
  first_command "$dir/root"
}
lazy_first() {
  local port=$1 ref=${2:-$lazy_ref} mnt=$work/mnt
  mkdir -p "$mnt"
  "${CLI[@]}" mount --socket "$sock" "127.0.0.1:$port/$ref" "$mnt" >>"$out/mount.log" 2>&1 || return 1
  step_sec=$(since "$t0")
  first_command "$mnt"
}
# The same mount through the daemon's API socket, as the snapshotter calls it (no CLI start-up):
# POST /v1/mounts {ref, mountpoint} with curl, which costs a few milliseconds to start.
lazy_api_first() {
  local port=$1 ref=${2:-$lazy_ref} mnt=$work/mnt
  mkdir -p "$mnt"
  curl -fsS --unix-socket "$sock" -X POST -H 'content-type: application/json' \
    --data "{\"ref\":\"127.0.0.1:$port/$ref\",\"mountpoint\":\"$mnt\"}" http://ondine/v1/mounts >>"$out/mount.log" 2>&1 || return 1
  echo >>"$out/mount.log"
  step_sec=$(since "$t0")
  first_command "$mnt"
}
lazy_umount() {
  "${CLI[@]}" umount --socket "$sock" "$work/mnt" >>"$out/mount.log" 2>&1 || umount "$work/mnt" 2>/dev/null || true
}
# Part a's two lazy rows of an image on link $l (port $p), run $run: the mount by the CLI,
# then through the API, each on a fresh daemon, + the command.
lazy_a_rows() {
  local image=$1 ref=$2 how
  for how in lazy lazy-api; do
    start_daemon "a-$image-$how-$l-$run"
    drop; snap; t0=$(now)
    if [ "$how" = lazy ]; then lazy_first "$p" "$ref"; else lazy_api_first "$p" "$ref"; fi \
      || die "$how mount of $image + first command ($l) failed (log $out/mount.log)"
    record bench=a image="$image" variant="$how" link="$l" run="$run" sec="$(since "$t0")" stepSec="$step_sec"
    lazy_umount; stop_daemon
  done
}

big_file= big_sum= walk_sum= walk_files=0 walk_bytes=0
big_index=0
for i in "${!LAYERS1[@]}"; do [ "${LAYERS1[i]}" = "$biggest_layer" ] && big_index=$i; done
# Keeps the names (from the largest layer's tar, on stdin) of regular files the image shows:
# not OCI whiteouts, not deleted by a whiteout (or an opaque dir) in a layer above. The pull
# does not apply whiteouts (the command does not care), so the overlay alone cannot tell.
walk_filter() {
  local f d b j gone
  while IFS= read -r f; do
    b=${f##*/}
    case $b in .wh.*) continue ;; esac
    [ -f "$work/pull/root/$f" ] && [ ! -L "$work/pull/root/$f" ] || continue
    if [[ $f == */* ]]; then d=${f%/*}; else d=.; fi
    gone=0
    for (( j=big_index+1; j<${#LAYERS1[@]}; j++ )); do
      if [ -e "$work/pull/l$j/$d/.wh.$b" ] || [ -e "$work/pull/l$j/$d/.wh..wh..opq" ] || [ -e "$work/pull/l$j/$f" ]; then gone=1; fi
    done
    [ "$gone" = 0 ] && printf '%s\0' "$f"
  done
}
if want a || want b; then
  for run in $(seq "$runs"); do
    for l in "${link_list[@]}"; do
      p=${LINK_PORT[$l]}
      for mode in seq par; do
        drop; snap; t0=$(now)
        full_pull "$mode" "$p" || die "full pull ($mode, $l) failed"
        record bench=a image=app1 variant="full-$mode" link="$l" run="$run" sec="$(since "$t0")" stepSec="$step_sec"
        if [ -z "$big_file" ]; then
          # For b: the image's largest file, and the regular files of the largest layer in the
          # order of its tar (the order the converted blob holds them), with their digests to
          # check what the lazy reads return.
          read -r _ big_file < <(find "$work/pull/root" -xdev -type f -printf '%s %P\n' | sort -n | tail -n 1)
          big_sum=$(sha256sum "$work/pull/root/$big_file" | cut -d' ' -f1)
          say "largest file: /$big_file ($(stat -c %s "$work/pull/root/$big_file") bytes)"
          tar -tvzf "$layout/blobs/${biggest_layer/://}" --quoting-style=literal \
            | awk '$1 ~ /^-/ { n = $6; for (i = 7; i <= NF; i++) n = n " " $i; sub(/^\.\//, "", n); print n }' \
            | walk_filter >"$work/walk.list"
          walk_files=$(tr -cd '\0' <"$work/walk.list" | wc -c)
          walk_bytes=$(cd "$work/pull/root" && xargs -0 stat -c %s -- <"$work/walk.list" | awk '{ s += $1 } END { print s }')
          walk_sum=$(cd "$work/pull/root" && xargs -0 cat -- <"$work/walk.list" | sha256sum | cut -d' ' -f1)
          say "largest layer's files: $walk_files, $walk_bytes bytes"
        fi
        umount "$work/pull/root"
        rm -rf "$work/pull"
      done
      if [ "$lazy" = 1 ] && want a; then lazy_a_rows app1 "$lazy_ref"; fi
      # The small python image: the same steps (a only).
      if want a && [ "${#a_images[@]}" -gt 1 ]; then
        for mode in seq par; do
          drop; snap; t0=$(now)
          full_pull "$mode" "$p" pysmall || die "full pull of pysmall ($mode, $l) failed"
          record bench=a image=pysmall variant="full-$mode" link="$l" run="$run" sec="$(since "$t0")" stepSec="$step_sec"
          umount "$work/pull/root"; rm -rf "$work/pull"
        done
        if [ "$lazy" = 1 ]; then lazy_a_rows pysmall bench/lazy:pysmall; fi
      fi
    done
    if [ "$lazy" = 1 ] && want a; then
      # What starting the CLI alone costs of the lazy time (node loading the CLI's modules cold).
      drop; snap; t0=$(now)
      "${CLI[@]}" --version >/dev/null
      record bench=cli run="$run" sec="$(since "$t0")"
    fi
  done
fi

# --- b: cold sequential reads through the mount vs curl of the same blob bytes --------------------
# file: dd of the largest file; walk: cat of every regular file of the largest layer, in the
# layer's tar order. Each on a fresh mount (fresh cache dir), page cache dropped; the bytes are
# checked afterwards (not timed).
read_b() {
  case $1 in
    file) dd if="$work/mnt/$big_file" of=/dev/null bs=1M status=none ;;
    walk) (cd "$work/mnt" && xargs -0 cat -- <"$work/walk.list" >/dev/null) ;;
  esac
}
sum_b() {
  case $1 in
    file) sha256sum "$work/mnt/$big_file" | cut -d' ' -f1 ;;
    walk) (cd "$work/mnt" && xargs -0 cat -- <"$work/walk.list" | sha256sum | cut -d' ' -f1) ;;
  esac
}
if [ "$lazy" = 1 ] && want b && [ -n "$big_file" ]; then
  for run in $(seq "$runs"); do
    for l in "${link_list[@]}"; do
      p=${LINK_PORT[$l]}
      for wl in file walk; do
        start_daemon "b-$wl-$l-$run"
        mkdir -p "$work/mnt"
        "${CLI[@]}" mount --socket "$sock" "127.0.0.1:$p/$lazy_ref" "$work/mnt" >>"$out/mount.log" 2>&1 || die "lazy mount ($l) failed (log $out/mount.log)"
        drop; snap; t0=$(now)
        read_b "$wl" || die "lazy read ($wl, $l) failed"
        sec=$(since "$t0")
        if [ "$wl" = file ]; then want_sum=$big_sum what="/$big_file" bytes=$(stat -c %s "$work/mnt/$big_file")
        else want_sum=$walk_sum what="$walk_files files of layer ${biggest_layer:7:12}" bytes=$walk_bytes; fi
        record bench=b workload="$wl" variant=lazy link="$l" run="$run" sec="$sec" what="$what" fileBytes="$bytes" ok=pending
        got=$(sum_b "$wl")
        # The check's own reads (all warm) do not count: the row was recorded before it.
        ok=$([ "$got" = "$want_sum" ] && echo yes || echo no)
        sed -i '$ s/"ok":"pending"/"ok":"'"$ok"'"/' "$results"
        lazy_umount; stop_daemon
        blob=$(last topBlob) fetched=$(last topBlobBytes)
        [ -n "$blob" ] || die "the lazy read ($wl, $l) fetched no blob bytes"
        drop; snap; t0=$(now)
        curl -fsS -o /dev/null -r "0-$((fetched - 1))" "http://127.0.0.1:$p/v2/${lazy_ref%%:*}/blobs/$blob"
        record bench=b workload="$wl" variant=curl link="$l" run="$run" sec="$(since "$t0")" rangeBytes="$fetched"
      done
    done
  done
fi

# --- report ------------------------------------------------------------------------------------
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "Registry benchmark, $(date -u +%Y-%m-%dT%H:%MZ): Linux $(uname -r), $(nproc) cores ($cpu_model), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, node $(node --version), load average now $(cut -d' ' -f1-3 /proc/loadavg)"
echo "image app1: ${#LAYERS1[@]} gzip layers, $(awk -v b="$comp1" 'BEGIN { printf "%.1f MB", b / 1e6 }') compressed; links: ${link_list[*]}; lazy steps: $([ "$lazy" = 1 ] && echo yes || echo 'no (this CLI lacks convert or mount <ref>)')"
node dist/scripts/bench/registry/report.js "$results" --proxy-ports "$p_count,$p_1g,$p_100m"
[ "$markdown" = 1 ] && { echo; node dist/scripts/bench/registry/report.js "$results" --proxy-ports "$p_count,$p_1g,$p_100m" --markdown; }
say "total run time $(( $(date +%s) - started )) s; results in $results"
