#!/usr/bin/env bash
# Run a script as root inside the Ondine test VM (QEMU/TCG, kernel from vm/build-kernel.sh).
#
#   vm/run.sh [options] <guest-script> [args...]
#
# The guest's root is the host's / read-only, so the script and every path it is given are
# host paths. Its console output is our stdout; its exit code is our exit code.
# Exit codes of our own: 124 timeout, 125 the VM failed before the script reported a result,
# 2 usage. See vm/README.md for the guest environment.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
  cat >&2 <<'EOF'
usage: vm/run.sh [options] <guest-script> [args...]

  --timeout SECS      kill the VM after SECS seconds, exit 124 (default: $ONDINE_VM_TIMEOUT or 600)
  --mem MB            guest memory (default 2048)
  --cpus N            guest CPUs (default 2)
  --env NAME=VALUE    export NAME=VALUE to the guest script (repeatable)
  --cache-img FILE    use FILE as the guest's ext4 cache disk, created if missing and kept
                      afterwards (default: a fresh image, deleted after the run)
  --cache-size MB     size of a newly created cache disk (sparse; default 2048)
  --interactive       connect our stdin to the guest console (for a guest shell: run.sh
                      --interactive /bin/busybox sh; Ctrl-A x quits QEMU). Without it the
                      guest console gets no input and Ctrl-C stops the VM.
  --verbose           show kernel messages and guest init steps with timestamps

Environment: ONDINE_VM_SHARE (host directory shared read-write at /mnt/share; default a
fresh temporary directory, deleted afterwards), ONDINE_VM_KERNEL (bzImage to boot instead
of the one vm/build-kernel.sh builds and caches), ONDINE_VM_NO_BUILD=1 (exit 125 at once
when that kernel is not built yet instead of building it), ONDINE_VM_TIMEOUT, ONDINE_VM_APPEND
(extra kernel command-line words, e.g. initcall_debug), ONDINE_VM_QEMU_ARGS (extra
QEMU arguments, split on spaces).
EOF
  exit 2
}

say() { printf 'vm/run.sh: %s\n' "$*" >&2; }
die() { printf 'vm/run.sh: error: %s\n' "$*" >&2; exit 125; }

timeout_s=${ONDINE_VM_TIMEOUT:-600}
mem=2048
cpus=2
cache_img=
cache_size=2048
verbose=0
interactive=0
envs=()
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) [ $# -ge 2 ] || usage; timeout_s=$2; shift 2 ;;
    --timeout=*) timeout_s=${1#*=}; shift ;;
    --mem) [ $# -ge 2 ] || usage; mem=$2; shift 2 ;;
    --mem=*) mem=${1#*=}; shift ;;
    --cpus) [ $# -ge 2 ] || usage; cpus=$2; shift 2 ;;
    --cpus=*) cpus=${1#*=}; shift ;;
    --env) [ $# -ge 2 ] || usage; envs+=("$2"); shift 2 ;;
    --env=*) envs+=("${1#*=}"); shift ;;
    --cache-img) [ $# -ge 2 ] || usage; cache_img=$2; shift 2 ;;
    --cache-img=*) cache_img=${1#*=}; shift ;;
    --cache-size) [ $# -ge 2 ] || usage; cache_size=$2; shift 2 ;;
    --cache-size=*) cache_size=${1#*=}; shift ;;
    --verbose) verbose=1; shift ;;
    --interactive) interactive=1; shift ;;
    -h|--help) usage ;;
    --) shift; break ;;
    -*) say "unknown option $1"; usage ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || usage
for n in "$timeout_s" "$mem" "$cpus" "$cache_size"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { say "not a positive integer: $n"; usage; }
done
for e in ${envs[@]+"${envs[@]}"}; do
  [[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || { say "--env wants NAME=VALUE, got: $e"; usage; }
done

script=$(realpath -e -- "$1" 2>/dev/null) || die "guest script $1 not found"
shift
[ -f "$script" ] || die "guest script $script is not a regular file"
case $script in
  /proc/*|/sys/*|/dev/*|/run/*|/mnt/*|/var/cache/*)
    die "guest script $script is under a path the guest mounts over; put it elsewhere" ;;
esac

# --- host packages ---------------------------------------------------------------------
pkg_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}
missing=()
for p in qemu-system-x86 busybox-static e2fsprogs; do pkg_installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}; run as root or install them"
  say "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
    || { apt-get update >&2 && apt-get install -y --no-install-recommends "${missing[@]}" >&2; } \
    || die "could not install ${missing[*]}"
fi
[ -x /bin/busybox ] || die "/bin/busybox missing (package busybox-static)"

# --- kernel ----------------------------------------------------------------------------
if [ -n "${ONDINE_VM_KERNEL:-}" ]; then
  kernel=$ONDINE_VM_KERNEL
else
  # ONDINE_VM_NO_BUILD=1 (the tests set it): fail at once when the kernel is not built yet,
  # rather than build it (minutes) inside the caller's timeout.
  kbuild=()
  [ "${ONDINE_VM_NO_BUILD:-}" = 1 ] && kbuild=(--cached-only)
  kernel=$(ONDINE_VM_QUIET_CACHED=1 "$HERE/build-kernel.sh" ${kbuild[@]+"${kbuild[@]}"} | tail -n 1) \
    || die "vm/build-kernel.sh ${kbuild[*]} failed"
fi
[ -f "$kernel" ] || die "kernel image $kernel not found"

# --- per-run state ---------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/ondine-vm.XXXXXX")
qemu_pid=
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  if [ -n "$qemu_pid" ]; then kill -TERM "$qemu_pid" 2>/dev/null || true; wait "$qemu_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'say "interrupted; stopping the VM"; exit 130' INT
trap 'say "terminated; stopping the VM"; exit 143' TERM HUP

ctl=$work/ctl
mkdir -p "$ctl"
if [ -n "${ONDINE_VM_SHARE:-}" ]; then
  mkdir -p "$ONDINE_VM_SHARE"
  share=$(realpath -e "$ONDINE_VM_SHARE")
else
  share=$work/share
  mkdir -p "$share"
fi

# ext4 on the host: mkfs in the guest would cost a dynamic program start under TCG.
make_cache_img() {
  truncate -s "${cache_size}M" "$1"
  mkfs.ext4 -q -F -L ondine-cache -E lazy_itable_init=0,lazy_journal_init=0 "$1" >&2 \
    || die "mkfs.ext4 $1 failed"
}
if [ -n "$cache_img" ]; then
  [ -e "$cache_img" ] || make_cache_img "$cache_img"
  drive="file=$cache_img,if=virtio,format=raw"
else
  make_cache_img "$work/cache.img"
  # Thrown away afterwards: no need to honour the guest's flushes.
  drive="file=$work/cache.img,if=virtio,format=raw,cache=unsafe"
fi

# Single quotes survive busybox sh; an embedded ' becomes '\''.
shq() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
{
  echo "ONDINE_VM_SCRIPT=$(shq "$script")"
  echo "ONDINE_VM_HOST_CWD=$(shq "$PWD")"
  echo "ONDINE_VM_SHARE_HOST=$(shq "$share")"
  for e in ${envs[@]+"${envs[@]}"}; do echo "export ${e%%=*}=$(shq "${e#*=}")"; done
  printf 'set --'
  for a in "$@"; do printf ' %s' "$(shq "$a")"; done
  echo
} >"$ctl/job"

# passthrough keeps real owners and modes; it needs root.
if [ "$(id -u)" -eq 0 ]; then sec=passthrough; else sec=none; fi

append="console=ttyS0 root=hostroot rootfstype=9p"
append+=" rootflags=trans=virtio,version=9p2000.L,msize=262144,cache=loose ro"
# no_timer_check: under a loaded host the IO-APIC timer test fails at random and prints
# "MP-BIOS bug: 8254 timer not connected" on the console.
append+=" init=$HERE/guest-init.sh panic=-1 no_timer_check"
if [ "$verbose" = 1 ]; then append+=" ondine_verbose=1"; else append+=" quiet"; fi
[ "$interactive" = 1 ] && append+=" ondine_interactive=1"
append+=${ONDINE_VM_APPEND:+ $ONDINE_VM_APPEND}

# q35, not the default i440fx: there the ACPI PCI interrupt-link setup costs 0.2-1.3 s per
# virtio device under TCG (2-4 s per boot); on q35 all of them probe in ~0.1 s.
# qboot instead of SeaBIOS: it boots faster and prints nothing (SeaBIOS writes its banner and
# terminal resets/clears to the serial console, i.e. our stdout).
firmware=()
[ -f /usr/share/qemu/qboot.rom ] && firmware=(-bios /usr/share/qemu/qboot.rom)
# shellcheck disable=SC2054  # the commas belong to QEMU option values
qemu=(qemu-system-x86_64 -accel tcg -cpu max -m "$mem" -smp "$cpus" -nographic -no-reboot
  -machine q35 -nic none
  -kernel "$kernel" -append "$append"
  -fsdev "local,id=hostroot,path=/,security_model=$sec,readonly=on,multidevs=remap"
  -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
  -fsdev "local,id=share,path=$share,security_model=$sec"
  -device virtio-9p-pci,fsdev=share,mount_tag=ondine-share
  -fsdev "local,id=ctl,path=$ctl,security_model=$sec"
  -device virtio-9p-pci,fsdev=ctl,mount_tag=ondine-ctl
  -drive "$drive"
  -device virtio-rng-pci
  ${firmware[@]+"${firmware[@]}"})
# Extra QEMU arguments, split on spaces (debugging aid).
# shellcheck disable=SC2206
[ -n "${ONDINE_VM_QEMU_ARGS:-}" ] && qemu+=($ONDINE_VM_QEMU_ARGS)

[ "$verbose" = 1 ] && say "booting $kernel with $script (timeout ${timeout_s}s)"
start_ns=$(date +%s%N)
# --foreground keeps QEMU in our process group so that it may use the terminal (and so that
# a caller killing our process group kills QEMU too). The parent-death signals make QEMU die
# with us even when we are SIGKILLed and no trap runs: `timeout` gets SIGKILL when this shell
# dies, QEMU when `timeout` dies.
guard=(setpriv --pdeathsig KILL --)
if [ "$interactive" = 1 ]; then
  # The explicit <&0 stops bash from giving a background job /dev/null.
  "${guard[@]}" timeout --foreground -k 10 "$timeout_s" "${guard[@]}" "${qemu[@]}" <&0 &
else
  # With a terminal on stdin QEMU would switch it to raw mode and swallow Ctrl-C.
  "${guard[@]}" timeout --foreground -k 10 "$timeout_s" "${guard[@]}" "${qemu[@]}" </dev/null &
fi
qemu_pid=$!
set +e
wait "$qemu_pid"
qemu_rc=$?
set -e
qemu_pid=
end_ns=$(date +%s%N)

if [ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ]; then
  say "timeout: the guest did not finish within ${timeout_s}s; QEMU was killed"
  exit 124
fi
if [ -f "$ctl/init-error" ]; then
  die "the guest's init failed: $(cat "$ctl/init-error")"
fi
if [ ! -s "$ctl/exit-code" ]; then
  die "the guest reported no exit code (QEMU exit status $qemu_rc; kernel panic or crash? rerun with --verbose)"
fi
rc=$(cat "$ctl/exit-code")
[[ $rc =~ ^[0-9]+$ ]] || die "the guest reported a malformed exit code: $rc"
if [ "$verbose" = 1 ]; then
  say "script started at guest uptime $(cat "$ctl/uptime-script-start" 2>/dev/null)s," \
      "ended at $(cat "$ctl/uptime-script-end" 2>/dev/null)s; QEMU ran $(( (end_ns - start_ns) / 1000000 )) ms;" \
      "exit code $rc"
fi
exit "$rc"
