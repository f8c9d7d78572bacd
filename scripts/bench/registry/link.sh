# Bandwidth caps of the emulated links on `lo`, sourced by scripts/bench/registry.sh. The kernel
# here has htb and tbf but no netem: the cap is an htb class per direction of one TCP port (the
# delay proxy's listener for that link, which adds the latency); traffic on every other port
# is unclassified and leaves through htb's direct queue, unshaped. `link_down` removes the root
# qdisc; the caller runs it from its EXIT trap.

link_owned=0

# link_init: an htb root on lo, refused when lo already has a root qdisc other than the default
# (someone else is shaping it; replacing theirs would break their run).
link_init() {
  local cur
  cur=$(tc qdisc show dev lo | awk '$0 ~ / root / { print $2; exit }')
  case $cur in
    ''|noqueue) ;;
    *) echo "link: lo already has a root qdisc ($cur); not touching it" >&2; return 1 ;;
  esac
  # r2q keeps the derived quanta sane at these rates; each class sets its own anyway.
  tc qdisc add dev lo root handle 1: htb default 0 r2q 100
  link_owned=1
}

# link_cap ID PORT RATE BURST: RATE (tc units, e.g. 1gbit) each way for TCP port PORT on
# 127.0.0.1: class 1:ID for bytes from the port (downloads), 1:ID+1 for bytes to it (uploads).
link_cap() {
  local id=$1 port=$2 rate=$3 burst=$4
  tc class add dev lo parent 1: classid "1:$id" htb rate "$rate" ceil "$rate" burst "$burst" cburst "$burst" quantum 65536
  tc class add dev lo parent 1: classid "1:$((id + 1))" htb rate "$rate" ceil "$rate" burst "$burst" cburst "$burst" quantum 65536
  tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip sport "$port" 0xffff flowid "1:$id"
  tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip dport "$port" 0xffff flowid "1:$((id + 1))"
}

link_down() {
  if [ "$link_owned" = 1 ]; then
    tc qdisc del dev lo root 2>/dev/null || true
    link_owned=0
  fi
}
