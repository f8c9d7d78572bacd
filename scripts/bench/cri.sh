#!/usr/bin/env bash
# CRI benchmark (issue 14): time from CRI PullImage to the container's first line of output,
# lazy (Ondine snapshotter, lazy image) against containerd's overlayfs snapshotter pulling the
# same image as plain OCI, in the same run, over the registry benchmark's emulated links (root,
# Linux with htb):
#
#   scripts/bench/cri.sh [options]
#
# Links (scripts/bench/registry/link.sh and registry/delay-proxy.ts, as the registry benchmark
# uses them): 1g = 1 Gbit/s each way, 2 ms round trip; 100m = 100 Mbit/s, 20 ms.
# Images:
#   python  scripts/bench/registry/make-images.sh's app1 (3 layers: debootstrap minbase,
#           python3 and >1 GB of libraries, a small app layer; built once, ~20 min, cached),
#           running python3 -c 'import json, sqlite3; print(1)'. Aim: lazy <= 10% of overlayfs
#           on 1g (0.15 acceptable until the cold-path issue lands).
#   small   busybox + 33 MiB of data files (scripts/bench/cri/images.ts), reading one 256 KiB
#           file (sha256sum /data/f0.bin).
#   reads   the same image, reading every data file (the app that reads most of itself). Aim:
#           never more than 1.2x overlayfs.
# Each measurement runs a fresh private containerd (test/helpers/containerd-env.ts: own mount
# namespace, root and config; nothing cached), RunPodSandbox first (the pause image pull is not
# timed), page cache dropped, then PullImage, CreateContainer, StartContainer; PullImage done
# and the first output line (the CRI log's stamp) are reported separately, each with the MB the
# link carried by then. Lazy rows need `ondine snapshotter`; without it only overlayfs runs.
# Results: <work>/out/results.jsonl (kept with --work).
#
# Options:
#   --images LIST   comma list of python,small,reads (default all three)
#   --links LIST    comma list of 1g,100m (default both)
#   --runs N        rounds, best kept by first output, all printed (default 2)
#   --cache DIR     python image cache (default /var/cache/ondine-bench)
#   --work DIR      scratch dir on ext4 (default: a new dir under /var/tmp, removed afterwards)
#   --markdown      print the table as Markdown (for BENCHMARKS.md)
#   --no-setup      do not run scripts/setup.sh first
#   BENCH_DAEMON_ARGS="--decode-threads 0 ..."  extra `ondine daemon` flags for the lazy runs
#                   (tuning experiments on the same harness)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
say() { printf 'cri-bench: %s\n' "$*" >&2; }
die() { printf 'cri-bench: error: %s\n' "$*" >&2; exit 2; }

images=python,small,reads links=1g,100m runs=2 cache=/var/cache/ondine-bench work= markdown=0 setup=1
while [ $# -gt 0 ]; do
  case $1 in
    --images) images=$2; shift 2 ;; --images=*) images=${1#*=}; shift ;;
    --links) links=$2; shift 2 ;; --links=*) links=${1#*=}; shift ;;
    --runs) runs=$2; shift 2 ;; --runs=*) runs=${1#*=}; shift ;;
    --cache) cache=$2; shift 2 ;; --cache=*) cache=${1#*=}; shift ;;
    --work) work=$2; shift 2 ;; --work=*) work=${1#*=}; shift ;;
    --markdown) markdown=1; shift ;;
    --no-setup) setup=0; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs wants a positive integer"
[ "$(id -u)" -eq 0 ] || die "run as root (tc, namespaces, mounts, drop_caches)"
want() { [[ ",$images," == *",$1,"* ]]; }

cd "$ROOT"
if [ "$setup" = 1 ]; then
  say "bash scripts/setup.sh (packages, addon, dist/)"
  bash scripts/setup.sh >&2
fi
for f in dist/src/cli/main.js dist/scripts/bench/registry/delay-proxy.js dist/scripts/bench/cri/measure.js dist/scripts/bench/cri/images.js; do
  [ -f "$f" ] || die "$f is missing: run bash scripts/setup.sh (or npx tsc -p tsconfig.json)"
done
for t in docker-registry containerd runc unshare nsenter tc gcc curl; do command -v "$t" >/dev/null || die "$t is missing: run bash scripts/setup.sh"; done
CLI=(node "$ROOT/dist/src/cli/main.js")
modes=overlayfs,lazy
if ! "${CLI[@]}" --help 2>/dev/null | grep -qE '^ +snapshotter '; then
  modes=overlayfs; say "ondine snapshotter is not available: lazy rows skipped"
fi
# shellcheck source=registry/link.sh
. "$ROOT/scripts/bench/registry/link.sh"

keep_work=1
if [ -z "$work" ]; then work=$(mktemp -d /var/tmp/ondine-cribench.XXXXXX); keep_work=0; fi
mkdir -p "$work"; work=$(realpath "$work")
out=$work/out; mkdir -p "$out"
results=$out/results.jsonl; : >"$results"
pids=()
cleanup() {
  local rc=$?
  set +e
  local p
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  link_down
  if [ "$keep_work" = 0 ]; then rm -rf "$work"; else rm -rf "$work/reg" "$work/img"; fi
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
setsid docker-registry serve "$work/reg/config.yml" >"$out/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do curl -fsS -o /dev/null "http://127.0.0.1:$reg_port/v2/" 2>/dev/null && break; sleep 0.1; done
curl -fsS -o /dev/null "http://127.0.0.1:$reg_port/v2/" || die "docker-registry did not start (log $out/registry.log)"

setsid node "$ROOT/dist/scripts/bench/registry/delay-proxy.js" "127.0.0.1:$reg_port" 2,20 >"$work/proxy.json" 2>"$out/proxy.log" &
pids+=($!)
for _ in $(seq 600); do [ "$(tail -c 1 "$work/proxy.json" 2>/dev/null | od -An -c | tr -d ' ')" = '\n' ] && break; sleep 0.1; done
read -r p_1g p_100m ctl < <(node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); console.log(...j.ports, j.control)' "$work/proxy.json") \
  || die "the delay proxy did not start (log $out/proxy.log)"
link_init || die "cannot shape lo"
link_cap 10 "$p_1g" 1gbit 256k
link_cap 20 "$p_100m" 100mbit 64k
link_args=()
[[ ",$links," == *",1g,"* ]] && link_args+=("1g=$p_1g")
[[ ",$links," == *",100m,"* ]] && link_args+=("100m=$p_100m")
[ ${#link_args[@]} -gt 0 ] || die "--links names none of 1g,100m"
say "registry 127.0.0.1:$reg_port; links ${link_args[*]}"

image_args=()
if want small || want reads; then
  say "building and pushing the busybox images"
  refs=$(node "$ROOT/dist/scripts/bench/cri/images.js" "127.0.0.1:$reg_port" "$work/img" | tail -n 1)
  pause=$(node -e 'console.log(JSON.parse(process.argv[1]).pause)' "$refs")
  plain=$(node -e 'console.log(JSON.parse(process.argv[1]).plain)' "$refs")
  lazyref=$(node -e 'console.log(JSON.parse(process.argv[1]).lazy)' "$refs")
  want small && image_args+=(--image "small=$plain,$lazyref,sha256sum /data/f0.bin")
  want reads && image_args+=(--image "reads=$plain,$lazyref,cat /data/*.bin | sha256sum")
else
  refs=$(node "$ROOT/dist/scripts/bench/cri/images.js" "127.0.0.1:$reg_port" "$work/img" | tail -n 1)
  pause=$(node -e 'console.log(JSON.parse(process.argv[1]).pause)' "$refs")
fi
if want python; then
  command -v skopeo >/dev/null || die "skopeo is missing: run bash scripts/setup.sh"
  layout=$("$ROOT/scripts/bench/registry/make-images.sh" "$cache" | tail -n 1)
  [ -f "$layout/index.json" ] || die "no OCI layout at $layout"
  say "pushing the python image (skopeo) and converting it (ondine convert)"
  skopeo copy -q --dest-tls-verify=false "oci:$layout:app1" "docker://127.0.0.1:$reg_port/bench/python:plain" >&2
  "${CLI[@]}" convert "127.0.0.1:$reg_port/bench/python:plain" "127.0.0.1:$reg_port/bench/python:lazy" >"$out/convert.log" 2>&1 \
    || die "ondine convert failed (log $out/convert.log)"
  image_args+=(--image "python=127.0.0.1:$reg_port/bench/python:plain,127.0.0.1:$reg_port/bench/python:lazy,python3 -c 'import json, sqlite3; print(1)'")
fi
[ ${#image_args[@]} -gt 0 ] || die "--images names none of python,small,reads"

extra=()
[ "$markdown" = 1 ] && extra+=(--markdown)
say "measuring (modes $modes, $runs runs)"
node "$ROOT/dist/scripts/bench/cri/measure.js" --registry "127.0.0.1:$reg_port" --control "$ctl" --link "$(IFS=,; echo "${link_args[*]}")" \
  --pause "$pause" --runs "$runs" --modes "$modes" --out "$results" "${image_args[@]}" "${extra[@]}"
