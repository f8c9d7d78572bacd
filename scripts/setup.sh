#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian bookworm machine (as root):
# Debian packages (only the missing ones, so a warm machine pays nothing), npm packages
# (npm ci, which also builds the addon), the TypeScript build, erofs-utils 1.8 and the test
# VM's kernel (each built once per machine and cached, so no test's timeout covers a build)
# and the Node LTS binaries scripts/test-node-lts.sh runs the suite under.
# ONDINE_SETUP_SKIP_VM=1 skips the kernel, ONDINE_SETUP_SKIP_LTS=1 the Node binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential python3 pkg-config liblz4-dev libzstd-dev   # the addon
  erofs-utils e2fsprogs attr util-linux fuse3 libcap2-bin     # host tests and oracles
  tar gzip zstd xz-utils
  docker-registry nginx-light skopeo umoci apache2-utils curl openssl  # registry tests (htpasswd from apache2-utils; openssl makes the test token issuer's and TLS certificates)
  debootstrap iproute2                                          # registry benchmarks (tc)
  qemu-system-x86 busybox-static                              # the test VM (busybox-static also builds the CRI tests' images)
  containerd runc                                               # CRI end-to-end tests (a private containerd per run; the system unit is left alone)
  linux-source-6.1 bc flex bison libelf-dev libssl-dev cpio kmod
  golang-github-containerd-containerd-dev golang-github-gogo-protobuf-dev  # the snapshotter loads containerd's .proto files from these
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  if [ "$(id -u)" != 0 ]; then echo "setup: need root to apt-get install ${missing[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ "${ONDINE_FORCE_NPM_CI:-}" = 1 ]; then
  npm ci --no-audit --no-fund
else
  # node_modules is current; the addon may still need building in a fresh clone.
  [ -f build/Release/ondine.node ] || npm run build:native
fi
npm run build

# erofs-utils 1.8 (the tests' fsck.erofs/mkfs.erofs oracles), built once per machine: here,
# so that no test file pays the build inside its timeout.
bash scripts/build-erofs-utils.sh >/dev/null
if [ "${ONDINE_SETUP_SKIP_VM:-}" != 1 ] && [ -z "${ONDINE_VM_KERNEL:-}" ]; then
  # Progress on stderr; the bzImage path (its last stdout line) is not needed here.
  bash vm/build-kernel.sh >/dev/null
fi
if [ "${ONDINE_SETUP_SKIP_LTS:-}" != 1 ]; then
  bash scripts/test-node-lts.sh --fetch-only
fi
