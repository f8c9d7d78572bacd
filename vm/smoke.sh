#!/usr/bin/env bash
# Smoke test of the test VM: builds (or finds) the kernel, boots it three times and checks
#   1. the kernel and guest environment (vm/smoke-guest.sh check),
#   2. that the guest script's exit code becomes run.sh's exit code,
#   3. that --timeout kills a hung guest and exits 124.
# Exits non-zero on any failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
failed=0
pass() { echo "smoke: PASS $*"; }
fail() { echo "smoke: FAIL $*"; failed=1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

ONDINE_VM_KERNEL=$("$HERE/build-kernel.sh" | tail -n 1)
export ONDINE_VM_KERNEL
echo "smoke: kernel $ONDINE_VM_KERNEL"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ondine-vm-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "from the host" >"$tmp/host-file"
mkdir "$tmp/share"

# 1. environment checks
t0=$(now_ms)
set +e
ONDINE_VM_SHARE=$tmp/share "$HERE/run.sh" --timeout 300 "$HERE/smoke-guest.sh" check \
  "$tmp/host-file" "two words, 'quotes' and \$dollar" "$tmp/share" | tee "$tmp/check.out"
rc=${PIPESTATUS[0]}
set -e
t1=$(now_ms)
if [ "$rc" -eq 0 ] && ! grep -q '^not ok' "$tmp/check.out" && grep -q '^ok - node runs' "$tmp/check.out"; then
  pass "guest checks ($((t1 - t0)) ms for the whole VM run)"
else
  fail "guest checks (run.sh exit $rc)"
fi
host_node=$(node -e 'console.log(process.version)')
guest_node=$(cat "$tmp/share/node-version" 2>/dev/null || true)
if [ "$guest_node" = "$host_node" ]; then
  pass "share round trip: the guest wrote node $guest_node"
else
  fail "share round trip: expected '$host_node' in the share, found '$guest_node'"
fi

guest_node=$(cat "$tmp/share/via-host-path" 2>/dev/null || true)
if [ "$guest_node" = "$host_node" ]; then
  pass "the share is mounted at its host path in the guest too"
else
  fail "share at its host path: expected '$host_node' in $tmp/share/via-host-path, found '$guest_node'"
fi

# 2. exit code propagation
set +e
"$HERE/run.sh" --timeout 120 "$HERE/smoke-guest.sh" exit 7
rc=$?
set -e
if [ "$rc" -eq 7 ]; then pass "guest exit code 7 became run.sh's exit code"; else fail "guest exited 7, run.sh exited $rc"; fi

# 3. timeout
t0=$(now_ms)
set +e
"$HERE/run.sh" --timeout 10 "$HERE/smoke-guest.sh" sleep 600 2>"$tmp/timeout.err"
rc=$?
set -e
t1=$(now_ms)
if [ "$rc" -eq 124 ] && grep -q timeout "$tmp/timeout.err" && [ $((t1 - t0)) -lt 60000 ]; then
  pass "a hung guest is killed after --timeout 10 (exit 124 after $((t1 - t0)) ms)"
else
  fail "timeout: run.sh exited $rc after $((t1 - t0)) ms: $(cat "$tmp/timeout.err")"
fi

if [ "$failed" -ne 0 ]; then echo "smoke: FAILED"; exit 1; fi
echo "smoke: all passed"
