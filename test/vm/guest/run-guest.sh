#!/bin/sh
# Runs inside the VM: the guest test files one at a time (one process may hold
# /dev/cachefiles), reporting TAP on the console for the host test to parse.
#
# A failing guest step ends the run at once: the first file that fails (or hangs past its
# deadline) stops the loop, and the files after it are reported as skipped, so a broken
# environment never leaves the VM idle until vm/run.sh's timeout. Each file runs in a node of
# its own, without the --test runner: --test-force-exit then ends that process once its tests
# are done even if it left something running (a registry, a daemon) that holds its output,
# which would keep a runner waiting for the output to close.
# ONDINE_VM_KEEP_GOING=1 runs every file regardless; ONDINE_VM_TEST_TIMEOUT_MS bounds one test.
set -eu
repo=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$repo"
files=$(ls dist/test/vm/guest/*.guest.js)
# ONDINE_VM_GUESTS="names failures" runs only those guest files (a change's own, while working).
if [ -n "${ONDINE_VM_GUESTS:-}" ]; then
  files=$(for g in $ONDINE_VM_GUESTS; do ls "dist/test/vm/guest/$g.guest.js"; done)
fi
per_test=${ONDINE_VM_TEST_TIMEOUT_MS:-900000}
failed=
for f in $files; do
  name=${f##*/}
  if [ -n "$failed" ]; then
    echo "ok 0 - ${name%.guest.js}: not run # SKIP ${failed} failed first"
    continue
  fi
  echo "# guest file $name"
  code=0
  node --test-reporter=tap --test-force-exit --test-timeout="$per_test" "$f" || code=$?
  if [ "$code" != 0 ]; then
    echo "not ok 0 - $name exited $code"
    [ "${ONDINE_VM_KEEP_GOING:-}" = 1 ] || failed=$name
    rc=1
  fi
done
exit "${rc:-0}"
