#!/usr/bin/env bash
# Decode benchmark: ChunkReader throughput (read from a local directory, zstd decompress,
# blake3 verify) over a whole image, decoding on the main thread vs on the decode pool with 1,
# 2 and 4 worker threads, measured in the same run. The image is a ~200 MB shuffled sample of
# /usr/lib (scripts/bench/capped-copy.sh) built with `ondine build --compressor zstd
# --chunk-size 1M --digest blake3`. Prints MB/s (compressed and uncompressed) and each mode's
# speed relative to the main-thread path, as a Markdown table.
#
# usage: scripts/bench/decode.sh [SOURCE_DIR]
#   SOURCE_DIR        tree to sample (default /usr/lib)
#   BENCH_MAX_BYTES   cap of the sample (default 209715200 = 200 MiB)
#   BENCH_RUNS        runs per mode, interleaved round by round (default 3; the median counts)
#   BENCH_THREADS     modes, comma separated, 0 = main thread (default 0,1,2,4)
#   BENCH_TMP         where the sample and the image go (default ${TMPDIR:-/tmp})
#   BENCH_KEEP=1      keep the temp dir
#
# The blobs are read once before the runs, so every run reads them from the page cache and
# measures decoding, not the disk. Nothing is written: onChunk only counts. Worker start-up is
# not timed (a daemon pays it once). Needs node, the native addon and dist/ (built here if
# missing), tar (for the sample).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
source_dir=${1:-/usr/lib}
runs=${BENCH_RUNS:-3}
max_bytes=${BENCH_MAX_BYTES:-209715200}
threads=${BENCH_THREADS:-0,1,2,4}

die() { echo "bench: $*" >&2; exit 1; }
[ -d "$source_dir" ] || die "source $source_dir is not a directory"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"
[[ $threads =~ ^[0-9]+(,[0-9]+)*$ ]] || die "BENCH_THREADS must be a comma-separated list of thread counts"
[[ $max_bytes =~ ^[1-9][0-9]*$ ]] || die "BENCH_MAX_BYTES must be a positive integer"
command -v node >/dev/null || die "node not found (run: bash scripts/setup.sh)"
cd "$repo"
if [ ! -f dist/scripts/bench/decode/driver.js ]; then
  echo "bench: dist/ missing, running npm run build" >&2
  npm run build >&2
fi
[ -f build/Release/ondine.node ] || die "the native addon is not built (run: bash scripts/setup.sh)"

work=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/ondine-bench-decode.XXXXXX")
cleanup() { if [ "${BENCH_KEEP:-}" = 1 ]; then echo "bench: kept $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT

echo "bench: sampling $source_dir into $work/tree (cap $max_bytes bytes)" >&2
src_bytes=$(bash "$repo/scripts/bench/capped-copy.sh" "$source_dir" "$work/tree" "$max_bytes")
echo "bench: building the image" >&2
node dist/src/cli/main.js build "$work/tree" -o "$work/img" --compressor zstd --chunk-size 1M --digest blake3 >/dev/null
cat "$work"/img/blobs/* >/dev/null # into the page cache

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
table=$(node dist/scripts/bench/decode/driver.js "$work/img/bootstrap" "$work/img/blobs" --threads "$threads" --runs "$runs")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
cat <<EOT

## Decode: ChunkReader on the main thread vs the decode pool

- command: \`bash scripts/bench/decode.sh${1:+ $1}\`$( [ "${BENCH_RUNS:-}" ] && printf ' (BENCH_RUNS=%s)' "$runs")$( [ "${BENCH_MAX_BYTES:-}" ] && printf ' (BENCH_MAX_BYTES=%s)' "$max_bytes")$( [ "${BENCH_THREADS:-}" ] && printf ' (BENCH_THREADS=%s)' "$threads")
- machine: $(nproc) cores ($cpu_model), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r), node $(node --version)
- tree: $(awk -v b="$src_bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB sampled from $source_dir; \`ondine build --compressor zstd --chunk-size 1M --digest blake3\`; blobs read from the page cache
- load average before / after: $load_before / $load_after
$table
EOT
