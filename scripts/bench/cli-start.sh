#!/usr/bin/env bash
# Start-up of the `ondine` CLI (issue 15, item 1): `ondine --version`, `ondine mount --help` and
# a real `ondine mount` of a local image through a running daemon (fanotify, this host), each
# against `node -e 0` timed in the same rounds, interleaved, so the load of a shared machine
# falls on all of them alike. With --before DIR (another checkout, built: dist/ present) its
# CLI runs in the same rounds, against the same daemon.
#
#   scripts/bench/cli-start.sh [--before DIR] [--rounds N] [--cold] [--markdown]
#
#   --before DIR  a second checkout to compare (e.g. the commit before a change)
#   --rounds N    interleaved rounds (default 10); the table gives each command's median
#   --cold        drop the page cache before every command (echo 3 > drop_caches; disturbs
#                 everything else on the machine)
#   --markdown    print the table as Markdown too
# Root (the daemon, mounts). The daemon is this checkout's, on a scratch socket and cache dir.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
say() { printf 'cli-start: %s\n' "$*" >&2; }
die() { printf 'cli-start: error: %s\n' "$*" >&2; exit 2; }

before= rounds=10 cold=0 markdown=0
while [ $# -gt 0 ]; do
  case $1 in
    --before) before=$2; shift 2 ;; --before=*) before=${1#*=}; shift ;;
    --rounds) rounds=$2; shift 2 ;; --rounds=*) rounds=${1#*=}; shift ;;
    --cold) cold=1; shift ;;
    --markdown) markdown=1; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds wants a positive integer"
[ "$(id -u)" -eq 0 ] || die "run as root (daemon, mounts)"
[ -f "$ROOT/dist/src/cli/main.js" ] || die "dist/ is missing: npx tsc -p tsconfig.json"
[ -z "$before" ] || [ -f "$before/dist/src/cli/main.js" ] || die "$before/dist/src/cli/main.js is missing: build that checkout first"

work=$(mktemp -d /var/tmp/ondine-clistart.XXXXXX)
sock=$work/ondine.sock
cleanup() {
  local rc=$?
  set +e
  awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  [ -S "$sock" ] && node "$ROOT/dist/src/cli/main.js" stop --force --socket "$sock" >/dev/null 2>&1
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A small local image (a few files) and this checkout's daemon.
mkdir -p "$work/tree/etc" "$work/cache" "$work/mnt"
printf 'hello\n' >"$work/tree/etc/hello"
node "$ROOT/dist/src/cli/main.js" build -o "$work/image" "$work/tree" >/dev/null
node "$ROOT/dist/src/cli/main.js" daemon --cache-dir "$work/cache" --socket "$sock" >/dev/null 2>"$work/daemon.log"

clis=("after=$ROOT")
[ -n "$before" ] && clis+=("before=$(realpath "$before")")
results=$work/times.txt; : >"$results"
# time_one <name> <command...>: appends "<name> <seconds>"
time_one() {
  local name=$1 t0 t1; shift
  [ "$cold" = 1 ] && { sync; echo 3 >/proc/sys/vm/drop_caches; }
  t0=$(date +%s%N)
  "$@" >/dev/null 2>>"$work/errors.log" || die "$name failed: $* (see $work/errors.log)"
  t1=$(date +%s%N)
  echo "$name $(( (t1 - t0) / 1000 ))" >>"$results"
}
say "$rounds rounds; $( [ "$cold" = 1 ] && echo 'page cache dropped before each command' || echo 'page cache warm')"
for _ in $(seq "$rounds"); do
  time_one 'node -e 0' node -e 0
  for c in "${clis[@]}"; do
    name=${c%%=*} dir=${c#*=}
    time_one "$name: ondine --version" node "$dir/dist/src/cli/main.js" --version
    time_one "$name: ondine mount --help" node "$dir/dist/src/cli/main.js" mount --help
    time_one "$name: ondine mount <local image>" node "$dir/dist/src/cli/main.js" mount --socket "$sock" "$work/image" "$work/mnt"
    node "$ROOT/dist/src/cli/main.js" umount --socket "$sock" "$work/mnt" >/dev/null
  done
done

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); node $(node --version); $rounds rounds"
node --input-type=module - "$results" "$markdown" "$ROOT/dist/scripts/bench/lib/table.js" <<'EOF'
import { readFileSync } from 'node:fs';
const [file, md, tableJs] = process.argv.slice(2);
const { formatTable } = await import(tableJs);
const byName = new Map();
for (const l of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
  const i = l.lastIndexOf(' ');
  const name = l.slice(0, i);
  if (!byName.has(name)) byName.set(name, []);
  byName.get(name).push(Number(l.slice(i + 1)) / 1e6);
}
const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const base = median(byName.get('node -e 0'));
const rows = [...byName].map(([name, t]) => [name, median(t).toFixed(3), Math.min(...t).toFixed(3), (median(t) / base).toFixed(2), (median(t) - base).toFixed(3)]);
const header = ['command', 'median s', 'min s', 'x node -e 0', 'over node -e 0, s'];
console.log(formatTable(header, rows, false).join('\n'));
if (md === '1') console.log('\n' + formatTable(header, rows, true).join('\n'));
EOF
