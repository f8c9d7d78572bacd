#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs (scripts/setup.sh: packages, npm
# ci, the build, the VM kernel, the Node LTS binaries), then every tier on the project's Node —
# unit (without privileges), host (root: EROFS mounts, loop devices, fanotify), vm (QEMU,
# cachefiles) — and then the tiers below on Node 22 and 24 (scripts/test-node-lts.sh).
# Every tier runs even when one fails; node's TAP goes to stdout as it comes, and the last
# lines are the totals over all runs in the runner's own format (# tests, # pass, # fail, ...).
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh unit host  # only these tiers (no Node LTS runs)
# On Node 22 and 24 the unit tier runs: the host tier (the hostile-registry, CRI and snapshotter
# end-to-end tests) costs over 20 minutes a run on two cores, so a second host run would take
# the suite past its budget. Run it on 24 by hand before a release:
# ONDINE_LTS_TIERS_24="unit host" (ONDINE_LTS_TIERS_22 likewise; "" skips a line).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ONDINE_SHARED="${ONDINE_SHARED:-$(cd .. && pwd)/shared}"

tiers=("$@")
lts=1
if [ ${#tiers[@]} -eq 0 ]; then tiers=(unit host vm); else lts=0; fi
summary=$(mktemp "${TMPDIR:-/tmp}/ondine-test-summary.XXXXXX")
trap 'rm -f "$summary"' EXIT

rc=0
for tier in "${tiers[@]}"; do
  node scripts/tiers/tiers.mjs run "$tier" --summary "$summary" || rc=1
done
if [ "$lts" = 1 ]; then
  ONDINE_LTS_TIERS_22=${ONDINE_LTS_TIERS_22-unit} ONDINE_LTS_TIERS_24=${ONDINE_LTS_TIERS_24-unit} \
    bash scripts/test-node-lts.sh --summary "$summary" || rc=1
fi
node scripts/tiers/tiers.mjs summary "$summary" || rc=1
exit "$rc"
