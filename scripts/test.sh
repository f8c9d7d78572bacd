#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, then runs every tier with node's test
# runner — unit tests, host-kernel end-to-end tests (root: EROFS mounts, loop devices,
# fanotify) and the QEMU VM tests (cachefiles; the VM kernel is built once per machine).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ONDINE_SHARED="${ONDINE_SHARED:-$(cd .. && pwd)/shared}"
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
if [ ${#files[@]} -eq 0 ]; then echo "no test files found under dist/test" >&2; exit 1; fi
exec node --test --test-reporter=tap --test-timeout=1800000 "${files[@]}"
