#!/bin/sh
# Runs inside the VM: every guest test file, one at a time (one process may hold
# /dev/cachefiles), reporting TAP on the console for the host test to parse.
set -eu
repo=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$repo"
files=$(ls dist/test/vm/guest/*.guest.js)
# ONDINE_VM_GUESTS="names failures" runs only those guest files (a change's own, while working).
if [ -n "${ONDINE_VM_GUESTS:-}" ]; then
  files=$(for g in $ONDINE_VM_GUESTS; do ls "dist/test/vm/guest/$g.guest.js"; done)
fi
exec node --test --test-reporter=tap --test-concurrency=1 $files
