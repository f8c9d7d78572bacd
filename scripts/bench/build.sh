#!/usr/bin/env bash
# Build benchmark: `ondine build` against what the alternatives pay for the same tree, measured
# in the same run: `tar -c | gzip -6` (what building an OCI layer costs) and `mkfs.erofs
# --chunksize --blobdev` (erofs-utils, C, uncompressed). Prints MB/s (source bytes / wall
# time), output sizes, compression ratio, ondine's dedup ratio, and ondine's speed and size
# relative to each baseline, as a Markdown table (BENCHMARKS.md takes it as is).
#
# usage: scripts/bench/build.sh [SOURCE_DIR]
#   SOURCE_DIR        tree to sample (default /usr/lib). A shuffled, size-capped sample of its
#                     files is copied into a temp dir (scripts/bench/capped-copy.sh).
#   BENCH_MAX_BYTES   cap of the sample (default 367001600 = 350 MiB); 0 = benchmark
#                     SOURCE_DIR itself, whole and in place
#   BENCH_RUNS        runs per tool, interleaved round by round (default 3; the median counts)
#   BENCH_TMP         where the sample and the outputs go (default ${TMPDIR:-/tmp})
#   BENCH_KEEP=1      keep the temp dir
#
# Page cache: dropped once before the runs (as root), then warmed by reading the tree once, so
# every run reads its input from memory and measures the tool's work, not the disk. Every
# tool's output is on disk when its time stops: ondine fsyncs its blobs itself, the baselines
# are followed by `sync FILE`. Needs: node (and `npm run build`, done here if dist/ is missing),
# tar, gzip, mkfs.erofs (erofs-utils; scripts/setup.sh installs it).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
source_dir=${1:-/usr/lib}
runs=${BENCH_RUNS:-3}
max_bytes=${BENCH_MAX_BYTES:-367001600}

die() { echo "bench: $*" >&2; exit 1; }
[ -d "$source_dir" ] || die "source $source_dir is not a directory"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"
for tool in node tar gzip mkfs.erofs; do
  command -v "$tool" >/dev/null || die "$tool not found (run: bash scripts/setup.sh)"
done
cd "$repo"
if [ ! -f dist/src/cli/main.js ]; then
  echo "bench: dist/ missing, running npm run build" >&2
  npm run build >&2
fi
[ -f build/Release/ondine.node ] || die "the native addon is not built (run: bash scripts/setup.sh)"
ondine=(node "$repo/dist/src/cli/main.js")

work=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/ondine-bench-build.XXXXXX")
cleanup() { if [ "${BENCH_KEEP:-}" = 1 ]; then echo "bench: kept $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT

# ---- the tree ----
if [ "$max_bytes" = 0 ]; then
  tree=$(cd "$source_dir" && pwd)
  echo "bench: using $tree in place" >&2
else
  tree=$work/tree
  echo "bench: sampling $source_dir into $tree (cap $max_bytes bytes)" >&2
  bash "$repo/scripts/bench/capped-copy.sh" "$source_dir" "$tree" "$max_bytes" >/dev/null
fi
read -r src_bytes src_files < <(find "$tree" -type f -printf '%s\n' | awk '{ s += $1; n++ } END { printf "%d %d\n", s, n }')
src_dirs=$(find "$tree" -type d | wc -l)
src_links=$(find "$tree" -type l | wc -l)
[ "$src_bytes" -gt 0 ] || die "the tree holds no file data"

# ---- page cache: drop once, then warm by reading the tree ----
cache_note="page cache warm (tree read once before the runs)"
if [ -w /proc/sys/vm/drop_caches ]; then
  sync
  echo 3 >/proc/sys/vm/drop_caches
  cache_note="page cache dropped once, then warmed by reading the tree once"
fi
t0=$(date +%s%N)
find "$tree" -type f -print0 | xargs -0 -r cat >/dev/null
t1=$(date +%s%N)
cold_mbs=$(awk -v b="$src_bytes" -v ns="$((t1 - t0))" 'BEGIN { printf "%.0f", b / 1e6 / (ns / 1e9) }')

# ---- the contenders ----
run_ondine() { # compressor
  "${ondine[@]}" build "$tree" -o "$work/out-ondine-$1" --compressor "$1" --chunk-size 1M --digest blake3 --json >"$work/ondine-$1.json"
}
# (&& chains: these run where `set -e` does not apply.)
run_gzip() {
  tar -C "$tree" -cf - . | gzip -6 >"$work/out-layer.tar.gz" && sync "$work/out-layer.tar.gz"
}
run_mkfs() {
  # mkfs.erofs 1.5 exits 1 without a word if the blob file does not exist yet.
  : >"$work/out-erofs.blob" &&
    mkfs.erofs --chunksize=1048576 --blobdev="$work/out-erofs.blob" "$work/out-erofs.img" "$tree" >/dev/null &&
    sync "$work/out-erofs.img" "$work/out-erofs.blob"
}
clean_outputs() { rm -rf "$work"/out-*; }

names=(ondine-zstd tar-gzip mkfs-erofs ondine-lz4 ondine-none)
declare -A cmd=([ondine-zstd]="run_ondine zstd" [ondine-lz4]="run_ondine lz4" [ondine-none]="run_ondine none" [tar-gzip]=run_gzip [mkfs-erofs]=run_mkfs)
declare -A label=(
  [ondine-zstd]='`ondine build` (zstd, default)' [ondine-lz4]='`ondine build --compressor lz4`' [ondine-none]='`ondine build --compressor none`'
  [tar-gzip]='`tar -c \| gzip -6`' [mkfs-erofs]='`mkfs.erofs --chunksize=1M --blobdev`'
)
declare -A walls cpus out_bytes

out_size() { # name -> bytes of output
  case $1 in
    ondine-*) du -sb --apparent-size "$work/out-$1" | cut -f1 ;;
    tar-gzip) stat -c %s "$work/out-layer.tar.gz" ;;
    mkfs-erofs) echo $(($(stat -c %s "$work/out-erofs.img") + $(stat -c %s "$work/out-erofs.blob"))) ;;
  esac
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
TIMEFORMAT='%R %U %S'
for ((r = 1; r <= runs; r++)); do
  for name in "${names[@]}"; do
    clean_outputs
    if ! t=$({ time ${cmd[$name]} 2>"$work/$name.err"; } 2>&1); then
      cat "$work/$name.err" >&2
      die "$name failed"
    fi
    read -r real user sys <<<"$t"
    walls[$name]+="$real "
    cpus[$name]+="$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }') "
    out_bytes[$name]=$(out_size "$name")
    if [[ $name == ondine-* ]]; then cp "$work/$name.json" "$work/$name.last.json"; fi
    echo "bench: round $r/$runs $name ${real}s" >&2
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
clean_outputs

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
json() { node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(process.argv[2].split(".").reduce((o, k) => o[k], r))' "$1" "$2"; }

declare -A med mbs
for name in "${names[@]}"; do
  med[$name]=$(median <<<"${walls[$name]}")
  mbs[$name]=$(awk -v b="$src_bytes" -v t="${med[$name]}" 'BEGIN { printf "%.1f", b / 1e6 / t }')
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
cat <<EOF

## Build: \`ondine build\` vs \`tar | gzip -6\` vs \`mkfs.erofs\`

- command: \`bash scripts/bench/build.sh${1:+ $1}\`$( [ "${BENCH_RUNS:-}" ] && printf ' (BENCH_RUNS=%s)' "$runs")$( [ "${BENCH_MAX_BYTES:-}" ] && printf ' (BENCH_MAX_BYTES=%s)' "$max_bytes")
- machine: $(nproc) cores ($cpu_model), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r), node $(node --version), $(gzip --version | head -1), erofs-utils $(dpkg-query -W -f='${Version}' erofs-utils 2>/dev/null || echo '?')
- tree: $(mb "$src_bytes") MB in $src_files files, $src_dirs directories, $src_links symlinks (sample of $source_dir$( [ "$max_bytes" = 0 ] && echo ', whole'))
- $cache_note; cold read of the tree: $cold_mbs MB/s
- $runs runs per tool, interleaved; median wall time; MB/s = source bytes / wall time; CPU = user + sys (median run)
- load average before / after: $load_before / $load_after

| tool | wall s (runs) | median s | CPU s | MB/s | output MB | source / output | dedup | speed vs gzip | speed vs mkfs.erofs | size vs gzip |
|---|---|---|---|---|---|---|---|---|---|---|
EOF
for name in "${names[@]}"; do
  dedup='-'
  if [[ $name == ondine-* ]]; then dedup=$(awk -v d="$(json "$work/$name.last.json" dedupRatio)" 'BEGIN { printf "%.3f", d }'); fi
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %sx | %sx | %s |\n' \
    "${label[$name]}" "$(echo "${walls[$name]}" | xargs | tr ' ' '/')" "${med[$name]}" "$(median <<<"${cpus[$name]}")" "${mbs[$name]}" \
    "$(mb "${out_bytes[$name]}")" "$(ratio "$src_bytes" "${out_bytes[$name]}")" "$dedup" \
    "$(ratio "${mbs[$name]}" "${mbs[tar-gzip]}")" "$(ratio "${mbs[$name]}" "${mbs[mkfs-erofs]}")" "$(ratio "${out_bytes[$name]}" "${out_bytes[tar-gzip]}")"
done
echo
echo "ondine (zstd) / tar|gzip -6: $(ratio "${mbs[ondine-zstd]}" "${mbs[tar-gzip]}")x the speed, $(ratio "${out_bytes[ondine-zstd]}" "${out_bytes[tar-gzip]}")x the size; ondine (zstd) / mkfs.erofs: $(ratio "${mbs[ondine-zstd]}" "${mbs[mkfs-erofs]}")x the speed."
