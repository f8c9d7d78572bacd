#!/bin/busybox sh
# shellcheck shell=dash
# PID 1 of the Ondine test VM (booted by vm/run.sh; see vm/README.md for the contract).
#
# Only static busybox runs here: under TCG each dynamically linked program costs ~0.4 s of
# loading over 9p. Debian's busybox-static prefers its own applets to $PATH
# (FEATURE_SH_STANDALONE), so `mount`, `mkdir`, ... below are busybox applets.
#
# The host's / is the read-only root (9p). This script makes the writable places, mounts
# the share and the ext4 cache disk that vm/run.sh attached, runs the job that run.sh wrote
# into the control share, stores its exit code there, and powers the VM off.

SHARE_DIR=/mnt/share
CACHE_DIR=/var/cache/ondine
CTL=/run/ondine-vm
P9_OPTS=trans=virtio,version=9p2000.L,msize=262144

# Kernel command-line words of the form name=value without a dot arrive as environment
# variables: run.sh passes ondine_verbose=1 for --verbose, ondine_interactive=1 for
# --interactive.
verbose=${ondine_verbose:-0}
interactive=${ondine_interactive:-0}
unset ondine_verbose ondine_interactive

say() { echo "ondine-vm: $*" >&2; }
# Shell builtins where possible: every applet run is a fork+exec, ~20 ms under TCG.
uptime_s() { read -r up _ </proc/uptime; echo "$up"; }
trace() { [ "$verbose" = 1 ] && say "[$(uptime_s)s] $*"; }

power_off() {
  /bin/busybox sync
  # No "reboot: Power down" line on the console (our caller's stdout) unless --verbose.
  [ "$verbose" = 1 ] || echo 0 >/proc/sys/kernel/printk 2>/dev/null
  /bin/busybox poweroff -f
  # Not reached unless ACPI power-off failed.
  echo o >/proc/sysrq-trigger
  /bin/busybox sleep 5
  exit 1  # init exits -> panic -> panic=-1 reboots -> QEMU -no-reboot quits
}

# A broken environment must not look like a failing guest script: report it, stop.
fail() {
  say "guest init failed: $*"
  if [ -d "$CTL" ] && [ -w "$CTL" ]; then
    echo "$*" >"$CTL/init-error"
  fi
  power_off
}

# Until /proc is mounted, busybox cannot run its applets through /proc/self/exe (and the
# host's /proc, seen through the 9p root, points it at QEMU's binary): call it explicitly.
/bin/busybox mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
# CONFIG_DEVTMPFS_MOUNT normally mounted /dev already.
[ -c /dev/null ] || mount -t devtmpfs devtmpfs /dev || fail "mount /dev"
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
trace "init started"

mount -t tmpfs -o mode=755 tmpfs /run || fail "mount /run"
mkdir -p "$CTL" /run/ondine-tmp
mkdir -m 700 /run/home
mount -t 9p -o "$P9_OPTS" ondine-ctl "$CTL" || fail "mount the control share (9p tag ondine-ctl)"
[ -r "$CTL/job" ] || fail "no job file in the control share"

# /tmp and /var/tmp: the host's files there stay visible (tests hand over paths under /tmp; a
# checkout may live under /var/tmp), writes go to RAM. Never a bare tmpfs over them while the
# overlay works: that would hide a checkout there from the very test that runs from it.
mount -t tmpfs -o mode=755 tmpfs /run/ondine-tmp || fail "mount the /tmp upper tmpfs"
writable_tmp() {  # <dir> <name>
  mkdir -p "/run/ondine-tmp/$2/upper" "/run/ondine-tmp/$2/work"
  chmod 1777 "/run/ondine-tmp/$2/upper"
  if ! mount -t overlay overlay \
      -o "lowerdir=$1,upperdir=/run/ondine-tmp/$2/upper,workdir=/run/ondine-tmp/$2/work" "$1"; then
    say "warning: overlay on $1 failed; $1 is an empty tmpfs (host files under $1 are hidden)"
    mount -t tmpfs -o mode=1777 tmpfs "$1" || fail "mount $1"
  fi
}
writable_tmp /tmp tmp
[ -d /var/tmp ] && writable_tmp /var/tmp var-tmp

# /mnt is empty on a normal host: a tmpfs there holds the share's mount point.
mount -t tmpfs -o mode=755 tmpfs /mnt || fail "mount /mnt"
mkdir -p "$SHARE_DIR"
mount -t 9p -o "$P9_OPTS" ondine-share "$SHARE_DIR" || fail "mount the share (9p tag ondine-share)"

# The cachefiles cache must live on ext4/xfs (not tmpfs, not 9p): run.sh attaches an ext4
# image as the first virtio disk. /var/cache becomes a tmpfs to hold the mount point.
[ -b /dev/vda ] || fail "no cache disk /dev/vda (vm/run.sh attaches one)"
mount -t tmpfs -o mode=755 tmpfs /var/cache || fail "mount /var/cache"
mkdir -p "$CACHE_DIR"
mount -t ext4 /dev/vda "$CACHE_DIR" || fail "mount the ext4 cache disk /dev/vda on $CACHE_DIR"
trace "filesystems mounted"

ip link set lo up || say "warning: could not bring up lo"
hostname ondine-vm

# \n instead of \r\n on the console, so the host sees the guest's output unchanged; a
# terminal in raw mode (--interactive) needs the \r.
[ "$interactive" = 1 ] || stty -onlcr 2>/dev/null

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/run/home
export TERM=dumb
export LANG=C.UTF-8
export ONDINE_VM=1
export ONDINE_VM_SHARE_DIR="$SHARE_DIR"
export ONDINE_CACHE_DIR="$CACHE_DIR"
ulimit -n 65536

# The job file (written by run.sh) sets ONDINE_VM_SCRIPT, ONDINE_VM_HOST_CWD,
# ONDINE_VM_SHARE_HOST, the --env variables, and the script's arguments with `set --`.
# shellcheck disable=SC1091
. "$CTL/job" || fail "could not read the job file"
[ -n "$ONDINE_VM_SCRIPT" ] || fail "the job file names no script"
# The share is also mounted at its host path, so host paths into it work unchanged (without
# this, writes there would land in the read-only root or the /tmp overlay and be lost).
if [ -n "$ONDINE_VM_SHARE_HOST" ] && [ -d "$ONDINE_VM_SHARE_HOST" ]; then
  mount --bind "$SHARE_DIR" "$ONDINE_VM_SHARE_HOST" \
    || say "warning: could not mount the share at its host path $ONDINE_VM_SHARE_HOST"
fi
cd "${ONDINE_VM_HOST_CWD:-/}" 2>/dev/null || cd /

uptime_s >"$CTL/uptime-script-start"
trace "running $ONDINE_VM_SCRIPT $*"
# Without --interactive nothing ever arrives on the console: give the script an empty stdin
# instead of one that blocks forever.
[ "$interactive" = 1 ] || exec 0</dev/null
if [ -x "$ONDINE_VM_SCRIPT" ]; then
  "$ONDINE_VM_SCRIPT" "$@"
else
  sh "$ONDINE_VM_SCRIPT" "$@"
fi
rc=$?
uptime_s >"$CTL/uptime-script-end"
trace "script exited with $rc"

# Stop what the script left running, so its files are complete and the cache disk is quiet.
# (kill -0 -1 always succeeds: it counts kernel threads. They have no /proc/<pid>/exe.)
leftover=0
for p in /proc/[0-9]*; do
  [ "${p#/proc/}" = 1 ] && continue
  [ -e "$p/exe" ] && { leftover=1; break; }
done
if [ "$leftover" = 1 ]; then
  trace "stopping the processes the script left running"
  kill -TERM -1 2>/dev/null
  usleep 200000
  kill -KILL -1 2>/dev/null
fi
cd /
sync
umount "$CACHE_DIR" 2>/dev/null || mount -o remount,ro "$CACHE_DIR" 2>/dev/null
echo "$rc" >"$CTL/exit-code"
trace "powering off"
power_off
