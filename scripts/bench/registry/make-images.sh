#!/usr/bin/env bash
# The test images of the registry benchmarks, as an OCI layout dir (what skopeo and umoci
# write), made once and kept in the cache dir (rebuilt only when missing or made by an older
# recipe):
#
#   scripts/bench/registry/make-images.sh [CACHE_DIR]     (default /var/cache/ondine-bench)
#
# prints the layout dir (CACHE_DIR/registry-oci) on its last line. Tags (gzip layers, umoci):
#   app1  layer 1: debootstrap --variant=minbase bookworm
#         layer 2: python3 and large libraries a start command does not touch (numpy, scipy,
#                  pandas, matplotlib, sklearn, sympy, skimage, statsmodels, h5py, g++,
#                  gfortran, perl-doc): more than 1 GB unpacked in all
#         layer 3: a small "app" layer (flask, requests, yaml, lxml, sqlalchemy)
#   app2  layers 1 and 2 of app1, then a different small top layer (the app layer plus
#         psycopg2 and redis): the second of two images sharing a base
#   pysmall  layer 1: debootstrap --variant=minbase bookworm (its own run)
#            layer 2: python3 and python3-yaml (~300 MB unpacked in all): a small python
#            image, built into a cached layout on its own (~2 min)
# Config: cmd python3, PATH, LANG=C.UTF-8, PYTHONDONTWRITEBYTECODE=1.
# Packages come from the mirror in the system's apt config; apt lists and downloaded .debs
# live outside the rootfs (bind mounts) so no layer holds them. Needs root, debootstrap,
# umoci, ~6 GB free; ~15-25 min on 2 cores.
set -euo pipefail
say() { printf 'make-images: %s\n' "$*" >&2; }
die() { printf 'make-images: error: %s\n' "$*" >&2; exit 2; }

RECIPE=1   # bump when the recipe changes so cached images are rebuilt
cache=${1:-/var/cache/ondine-bench}
out=$cache/registry-oci
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot, bind mounts)"
SMALL_RECIPE=1   # the same for the small image (tag pysmall), added to a cached layout
main_cached=0
[ "$(cat "$out/.recipe" 2>/dev/null)" = "$RECIPE" ] && main_cached=1
if [ "$main_cached" = 1 ] && [ "$(cat "$out/.recipe-small" 2>/dev/null)" = "$SMALL_RECIPE" ]; then
  say "cached: $out"; echo "$out"; exit 0
fi
for t in debootstrap umoci skopeo chroot; do command -v "$t" >/dev/null || die "$t is missing (apt-get install debootstrap umoci skopeo)"; done

# The mirror the system already uses (deb822 sources first, then the one-line format).
mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"

LAYER2="python3 python3-numpy python3-scipy python3-pandas python3-matplotlib python3-sklearn python3-sympy
  python3-skimage python3-statsmodels python3-h5py perl-doc g++ gfortran"
APP1="python3-flask python3-requests python3-yaml python3-lxml python3-sqlalchemy"
APP2="$APP1 python3-psycopg2 python3-redis"

tmp=$cache/registry-oci.tmp
mounts=()
umount_all() {
  local i
  for (( i=${#mounts[@]}-1; i>=0; i-- )); do umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || true; done
  mounts=()
}
trap umount_all EXIT
trap 'exit 130' INT TERM
bind() { mkdir -p "$2"; mount --bind "$1" "$2"; mounts+=("$2"); }

# apt-get install in the chroot of a bundle's rootfs, with /proc bound, daemons kept from
# starting, and lists and archives in $tmp/apt (outside every layer).
chroot_apt() {
  local root=$1; shift
  mkdir -p "$tmp/apt/lists/partial" "$tmp/apt/archives/partial"
  bind /proc "$root/proc"
  bind "$tmp/apt/lists" "$root/var/lib/apt/lists"
  bind "$tmp/apt/archives" "$root/var/cache/apt/archives"
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"; chmod 755 "$root/usr/sbin/policy-rc.d"
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
    sh -c 'apt-get -q update && apt-get -q -y --no-install-recommends install "$@"' sh "$@" >&2
  rm -f "$root/usr/sbin/policy-rc.d" "$root/var/cache/apt/pkgcache.bin" "$root/var/cache/apt/srcpkgcache.bin"
  umount_all
  rm -rf "$root/var/log/apt"/* "$root/var/log/dpkg.log" "$root/tmp"/* "$root/root/.cache"
}

# A new layout in $1/oci whose tag base1 is layer 1 (debootstrap minbase), its bundle left
# unpacked in $1/b for the next layer.
minbase_layer() {
  local d=$1
  umoci init --layout "$d/oci"
  umoci new --image "$d/oci:empty"
  umoci unpack --image "$d/oci:empty" "$d/b"
  say "layer 1: debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$d/b/rootfs" "$mirror" >"$d/debootstrap.log" 2>&1 || { tail -n 30 "$d/debootstrap.log" >&2; die "debootstrap failed (log $d/debootstrap.log)"; }
  rm -rf "$d/b/rootfs/var/lib/apt/lists"/* "$d/b/rootfs/var/cache/apt"/*.bin "$d/b/rootfs/var/cache/apt/archives"/*.deb
  mkdir -p "$d/b/rootfs/var/lib/apt/lists/partial"
  umoci repack --refresh-bundle --history.created_by "debootstrap --variant=minbase bookworm" --image "$d/oci:base1" "$d/b"
}

# The small python image, into the (complete) layout at $out: built in a layout of its own,
# then copied in by skopeo, so a failure leaves the cached images as they were.
make_small() {
  local st=$cache/registry-small.tmp t1
  t1=$(date +%s)
  tmp=$st
  rm -rf "$st"; mkdir -p "$st"
  say "pysmall:"
  minbase_layer "$st"
  say "pysmall layer 2: apt-get install $SMALL"
  chroot_apt "$st/b/rootfs" $SMALL
  umoci repack --history.created_by "apt-get install $SMALL" --image "$st/oci:pysmall" "$st/b"
  umoci config --image "$st/oci:pysmall" --tag pysmall --config.cmd python3 \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env LANG=C.UTF-8 --config.env PYTHONDONTWRITEBYTECODE=1
  skopeo copy -q "oci:$st/oci:pysmall" "oci:$out:pysmall" >&2
  echo "$SMALL_RECIPE" >"$out/.recipe-small"
  rm -rf "$st"
  say "pysmall ready in $(( $(date +%s) - t1 )) s"
}
SMALL="python3 python3-yaml"

if [ "$main_cached" = 1 ]; then
  make_small
  echo "$out"; exit 0
fi

t0=$(date +%s)
rm -rf "$tmp"; mkdir -p "$tmp"
minbase_layer "$tmp"
say "layer 1 done ($(( $(date +%s) - t0 )) s)"

say "layer 2: apt-get install $(echo $LAYER2)"
chroot_apt "$tmp/b/rootfs" $LAYER2
umoci repack --refresh-bundle --history.created_by "apt-get install $(echo $LAYER2)" --image "$tmp/oci:base" "$tmp/b"
base_kb=$(du -sk "$tmp/b/rootfs" | cut -f1)
say "layer 2 done ($(( $(date +%s) - t0 )) s); base unpacked: $(( base_kb / 1024 )) MiB"
[ "$base_kb" -ge 1000000 ] || say "warning: the base is below 1 GB unpacked ($(( base_kb / 1024 )) MiB)"

say "app1 top layer: $APP1"
chroot_apt "$tmp/b/rootfs" $APP1
umoci repack --history.created_by "apt-get install $APP1" --image "$tmp/oci:app1" "$tmp/b"
rm -rf "$tmp/b"

say "app2 top layer (on a fresh unpack of the base): $APP2"
umoci unpack --image "$tmp/oci:base" "$tmp/b" >&2
chroot_apt "$tmp/b/rootfs" $APP2
umoci repack --history.created_by "apt-get install $APP2" --image "$tmp/oci:app2" "$tmp/b"
rm -rf "$tmp/b"

for t in app1 app2; do
  umoci config --image "$tmp/oci:$t" --tag "$t" --config.cmd python3 \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env LANG=C.UTF-8 --config.env PYTHONDONTWRITEBYTECODE=1
done
for t in empty base1 base; do umoci rm --image "$tmp/oci:$t"; done
umoci gc --layout "$tmp/oci"
rm -rf "$tmp/apt"
echo "$RECIPE" >"$tmp/oci/.recipe"
rm -rf "$out"; mv "$tmp/oci" "$out"; rm -rf "$tmp"
make_small
say "images ready in $(( $(date +%s) - t0 )) s: $out ($(du -sh "$out" | cut -f1) compressed)"
echo "$out"
