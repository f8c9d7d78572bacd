#!/usr/bin/env bash
# Provisioning for the top-level Vagrantfile (Debian 12 box). Runs as root inside the box.
#
#   vm/vagrant-provision.sh node     Node.js 20 from the official nodejs.org tarball
#   vm/vagrant-provision.sh kernel   build + install a kernel: the box's distribution config
#                                    plus vm/kernel.config (cachefiles on-demand, EROFS fscache)
#   vm/vagrant-provision.sh check    after the reboot: the running kernel has what Ondine needs
#
# Not exercised in Ondine's CI (no Vagrant/VirtualBox there); vm/run.sh is the tested path.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NODE_VERSION=${ONDINE_NODE_VERSION:-20.20.2}
LOCALVERSION=-ondine
BUILD_ROOT=${ONDINE_KERNEL_BUILD_DIR:-/var/tmp/ondine-kernel}
export DEBIAN_FRONTEND=noninteractive

log() { printf 'vagrant-provision: %s\n' "$*" >&2; }
die() { printf 'vagrant-provision: error: %s\n' "$*" >&2; exit 1; }

install_node() {
  if command -v node >/dev/null && [ "$(node -v)" = "v$NODE_VERSION" ]; then
    log "node v$NODE_VERSION already installed"
    return
  fi
  apt-get update
  apt-get install -y --no-install-recommends ca-certificates curl xz-utils build-essential python3 git
  # Debian 12 ships Node 18; Ondine needs 20. The official binary tarball, checked against
  # nodejs.org's SHASUMS256.txt, unpacked into /usr/local (no third-party apt repository).
  local name=node-v$NODE_VERSION-linux-x64 tmp
  tmp=$(mktemp -d)
  curl -fsSLo "$tmp/$name.tar.xz" "https://nodejs.org/dist/v$NODE_VERSION/$name.tar.xz"
  curl -fsSLo "$tmp/SHASUMS256.txt" "https://nodejs.org/dist/v$NODE_VERSION/SHASUMS256.txt"
  (cd "$tmp" && grep " $name.tar.xz\$" SHASUMS256.txt | sha256sum -c -) \
    || die "checksum mismatch for $name.tar.xz"
  tar -xJf "$tmp/$name.tar.xz" -C /usr/local --strip-components=1 --no-same-owner \
    --exclude CHANGELOG.md --exclude LICENSE --exclude README.md
  rm -rf "$tmp"
  hash -r
  log "installed $(/usr/local/bin/node -v) in /usr/local"
}

build_kernel() {
  local running; running=$(uname -r)
  if [ "${running%"$LOCALVERSION"}" != "$running" ] && [ -c /dev/cachefiles ]; then
    log "already running $running"
    return
  fi
  apt-get update
  apt-get install -y --no-install-recommends linux-source-6.1 build-essential bc flex bison \
    libelf-dev libssl-dev xz-utils cpio kmod rsync dpkg-dev fakeroot
  rm -rf "$BUILD_ROOT"
  mkdir -p "$BUILD_ROOT"
  log "unpacking /usr/src/linux-source-6.1.tar.xz"
  tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$BUILD_ROOT"
  cd "$BUILD_ROOT/linux-source-6.1"

  # The distribution's config of the running kernel ...
  cp "/boot/config-$running" .config
  # ... without Debian's signing keys (not in linux-source) and without debug info (hours
  # of build time and gigabytes of packages that the test kernel does not need).
  scripts/config --set-str SYSTEM_TRUSTED_KEYS "" --set-str SYSTEM_REVOCATION_KEYS "" \
    --disable DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT --disable DEBUG_INFO_DWARF4 \
    --disable DEBUG_INFO_DWARF5 --enable DEBUG_INFO_NONE --disable DEBUG_INFO_BTF
  # Only the modules the box has loaded now (ONDINE_FULL_KERNEL=1 builds all of Debian's
  # ~4000 modules instead, 1-2 hours on 2 CPUs). What Ondine needs is built in by the fragment.
  if [ "${ONDINE_FULL_KERNEL:-0}" != 1 ]; then
    make localmodconfig < <(yes '') >/dev/null
  fi
  scripts/kconfig/merge_config.sh -m .config "$HERE/kernel.config"
  make olddefconfig
  "$HERE/check-kernel-config.sh" "$HERE/kernel.config" .config

  log "make bindeb-pkg (this takes a while)"
  make -j"$(nproc)" LOCALVERSION="$LOCALVERSION" bindeb-pkg
  dpkg -i ../linux-image-*"$LOCALVERSION"*_*.deb
  # Boot the new kernel by default: it sorts first (6.1.<n> > 6.1.0), make sure anyway.
  local release; release=$(make -s LOCALVERSION="$LOCALVERSION" kernelrelease)
  sed -i 's/^GRUB_DEFAULT=.*/GRUB_DEFAULT="Advanced options for Debian GNU\/Linux>Debian GNU\/Linux, with Linux '"$release"'"/' \
    /etc/default/grub
  update-grub
  cd /
  rm -rf "$BUILD_ROOT"
  log "installed kernel $release; reboot to use it"
}

check() {
  local ok=1
  log "running kernel $(uname -r)"
  [ -c /dev/cachefiles ] || { log "missing /dev/cachefiles"; ok=0; }
  grep -qw erofs /proc/filesystems || { log "erofs not in /proc/filesystems"; ok=0; }
  if command -v node >/dev/null; then log "node $(node -v)"; else log "node missing"; ok=0; fi
  [ "$ok" = 1 ] || die "the box is not ready for Ondine's cachefiles tests"
  log "ready: cd /ondine && run the README's test command"
}

case ${1:-} in
  node) install_node ;;
  kernel) build_kernel ;;
  check) check ;;
  *) echo "usage: $0 node|kernel|check" >&2; exit 2 ;;
esac
