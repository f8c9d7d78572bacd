#!/bin/busybox sh
# shellcheck shell=dash
# Guest side of vm/smoke.sh. Modes:
#   smoke-guest.sh check <host-file> <arg> <share-host-path>
#       the kernel and environment checks; <host-file> must contain "from the host", <arg>
#       must be exactly: two words, 'quotes' and $dollar
#   smoke-guest.sh exit <n>        exit with <n> (exit-code propagation)
#   smoke-guest.sh sleep <secs>    sleep (timeout handling)

mode=${1:-check}
case $mode in
  exit) exit "$2" ;;
  sleep) sleep "$2"; exit 0 ;;
  check) ;;
  *) echo "smoke-guest: unknown mode $mode" >&2; exit 2 ;;
esac
host_file=$2
odd_arg=$3
share_host=$4

failed=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; failed=1; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

echo "# guest kernel $(uname -r), script started at uptime $(uptime_s)s"

# The point of the VM: the cachefiles device in on-demand mode and EROFS with fscache.
# The minor is dynamic (MISC_DYNAMIC_MINOR): 123 with some configs, 126 with this one.
misc_minor=$(awk '$2 == "cachefiles" { print $1 }' /proc/misc)
dev_nums=$(stat -c '%t,%T' /dev/cachefiles 2>/dev/null)
if [ -c /dev/cachefiles ] && [ -n "$misc_minor" ] && [ "$dev_nums" = "a,$(printf %x "$misc_minor")" ]; then
  ok "/dev/cachefiles is char 10,$misc_minor (misc device 'cachefiles')"
else
  not_ok "/dev/cachefiles missing or not the misc device 'cachefiles' (minor ${misc_minor:-none}; $(ls -l /dev/cachefiles 2>&1))"
fi
if grep -qw erofs /proc/filesystems; then ok "erofs in /proc/filesystems"; else not_ok "no erofs in /proc/filesystems"; fi

fstype=$(awk -v d="$ONDINE_CACHE_DIR" '$2 == d { t = $3 } END { print t }' /proc/mounts)
if [ "$fstype" = ext4 ]; then ok "cache dir $ONDINE_CACHE_DIR is ext4"; else not_ok "cache dir $ONDINE_CACHE_DIR is '${fstype:-not mounted}', want ext4"; fi

# `bind ondemand` fails with EOPNOTSUPP without CONFIG_CACHEFILES_ONDEMAND and on a cache
# filesystem cachefiles cannot use; success proves both. Closing the fd unbinds the cache.
if (
  exec 3<>/dev/cachefiles || exit 1
  echo "dir $ONDINE_CACHE_DIR" >&3 && echo "tag ondine-smoke" >&3 && echo "bind ondemand" >&3
) 2>/tmp/bind.err; then
  ok "cachefiles 'bind ondemand' on $ONDINE_CACHE_DIR"
else
  not_ok "cachefiles 'bind ondemand' failed: $(cat /tmp/bind.err)"
fi

# Host programs run (dynamically linked, over 9p).
t0=$(uptime_s)
v1=$(node -e 'console.log(process.version)' 2>&1)
t1=$(uptime_s)
v2=$(node -e 'console.log(process.version)' 2>&1)
t2=$(uptime_s)
[ "$v2" = "$v1" ] || not_ok "second node start printed '$v2', first '$v1'"
case $v1 in
  v[0-9]*) ok "node runs: $v1 (first start $(awk "BEGIN{print $t1-$t0}")s, second $(awk "BEGIN{print $t2-$t1}")s)" ;;
  *) not_ok "node -e failed: $v1" ;;
esac

# Environment contract.
if (echo "$v1" >"$ONDINE_VM_SHARE_DIR/node-version") 2>/dev/null; then ok "share $ONDINE_VM_SHARE_DIR is writable"; else not_ok "cannot write to the share $ONDINE_VM_SHARE_DIR"; fi
if [ -n "$share_host" ] && (echo "$v1" >"$share_host/via-host-path") 2>/dev/null; then
  ok "share writable at its host path $share_host"
else
  not_ok "cannot write to the share at its host path $share_host"
fi
if [ -n "$host_file" ] && [ "$(cat "$host_file" 2>/dev/null)" = "from the host" ]; then
  ok "host file $host_file visible in the guest"
else
  not_ok "host file $host_file not readable in the guest"
fi
if (echo x >/tmp/smoke-write) 2>/dev/null && [ "$(cat /tmp/smoke-write)" = x ]; then ok "/tmp is writable"; else not_ok "/tmp is not writable"; fi
if [ "$odd_arg" = "two words, 'quotes' and \$dollar" ]; then ok "arguments arrive unchanged"; else not_ok "argument mangled: [$odd_arg]"; fi
if [ "$(id -u)" = 0 ]; then ok "runs as root"; else not_ok "runs as uid $(id -u)"; fi
if [ -w /proc/sys/vm/drop_caches ]; then ok "/proc/sys/vm/drop_caches is writable"; else not_ok "no writable /proc/sys/vm/drop_caches"; fi
if [ -b /dev/loop0 ] || [ -c /dev/loop-control ]; then ok "loop devices available"; else not_ok "no loop devices"; fi
if ip -o addr show dev lo 2>/dev/null | grep -q 'inet 127.0.0.1'; then
  ok "loopback interface is up"
else
  not_ok "loopback interface is down"
fi

echo "# done at uptime $(uptime_s)s"
exit $failed
