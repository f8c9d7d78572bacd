#!/usr/bin/env bash
# capped-copy.sh SRC DST MAX_BYTES
# Copies regular files and symlinks of SRC (one filesystem) into DST while their sizes add up
# to at most MAX_BYTES: a size-limited sample of a real tree. Files are taken in an order
# shuffled by a fixed seed, so the sample spans the whole tree (a prefix in name order would be
# a few directories) and is the same on every run over the same source. Owners, modes, mtimes,
# xattrs and hardlinks inside the sample are kept (GNU tar); unreadable files are skipped.
# Prints the bytes of file data copied.
set -euo pipefail
src=$1 dst=$2 max=$3
list=$(mktemp)
trap 'rm -f "$list" "$list.total"' EXIT
mkdir -p "$dst"
# %s is the size, %P the path below SRC; NUL-terminated so any name survives. Sorting by path
# before shuffling makes the sample depend only on the set of files, not on readdir order.
(cd "$src" && find . -xdev \( -type f -o -type l \) -readable -printf '%s %P\0') \
  | LC_ALL=C sort -z -k2 \
  | LC_ALL=C awk -v RS='\0' -v ORS='\0' 'BEGIN { srand(20250101) } { print sprintf("%.9f", rand()) " " $0 }' \
  | LC_ALL=C sort -z -k1,1 \
  | LC_ALL=C awk -v RS='\0' -v ORS='\0' -v max="$max" '
      { $0 = substr($0, index($0, " ") + 1)   # drop the sort key
        sp = index($0, " "); size = substr($0, 1, sp - 1) + 0; path = substr($0, sp + 1) }
      total + size > max { next }   # skip what does not fit; smaller files may still
      { total += size; print path }
      END { printf "%d", total > "/dev/stderr" }' >"$list" 2>"$list.total"
tar -C "$src" --null --no-recursion -T "$list" --xattrs -cf - | tar -C "$dst" --xattrs -xpf -
cat "$list.total"; echo
