#!/usr/bin/env bash
# The main job on a built-in default: build a sample image, push it to a registry on
# 127.0.0.1, and mount it by reference lazily through the daemon — on this host over fanotify
# pre-content events where the kernel has them (Linux 6.14+), else over cachefiles inside the
# Ondine test VM. On the host it ends by running a container from the lazy image through a
# private containerd (CRI, `ondine snapshotter`), printing its output and the bytes fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2

demo=${ONDINE_DEMO_DIR:-/tmp/ondine-demo}
rm -rf "$demo"
mkdir -p "$demo/src"
echo "== 1. a sample tree: /usr/share/doc, /usr/lib/x86_64-linux-gnu/gconv and a 64 MiB file" >&2
cp -a /usr/share/doc "$demo/src/doc" 2>/dev/null || true
cp -a /usr/lib/x86_64-linux-gnu/gconv "$demo/src/gconv" 2>/dev/null || true
head -c $((64 << 20)) /dev/urandom >"$demo/src/big.bin"
echo "hello from a lazily fetched image" >"$demo/src/hello.txt"

echo "== 2. build the image (bootstrap + blobs)" >&2
node dist/src/cli/main.js build "$demo/src" -o "$demo/image"
node dist/src/cli/main.js inspect "$demo/image/bootstrap"

cache=${ONDINE_CACHE_DIR:-/var/cache/ondine}
if node dist/src/cli/main.js probe --cache-dir "$cache" --mode fanotify >&2; then
  echo "== 3. this kernel has fanotify pre-content events: serving on the host (fanotify path, no VM)" >&2
  bash scripts/demo-guest.sh "$demo"
  # Last: a container from a lazy image through containerd, where containerd and runc are
  # installed (setup.sh installs them) and this build has the snapshotter.
  if command -v containerd >/dev/null && command -v runc >/dev/null \
    && node dist/src/cli/main.js --help 2>/dev/null | grep -qE '^ +snapshotter '; then
    exec node dist/scripts/demo-cri.js
  fi
  echo "== 10. (no container through containerd: containerd/runc missing or this build has no ondine snapshotter)" >&2
  exit 0
fi
if [ -c /dev/cachefiles ] && grep -qw erofs /proc/filesystems; then
  echo "== 3. this kernel has on-demand cachefiles: serving on the host (cachefiles path)" >&2
  exec bash scripts/demo-guest.sh "$demo"
fi
echo "== 3. neither path on this kernel: booting the Ondine test VM (QEMU/TCG, cachefiles path)" >&2
exec vm/run.sh --timeout 900 scripts/demo-guest.sh "$demo"
