#!/bin/busybox sh
# shellcheck shell=dash
# Guest entry of scripts/bench/vm-read.sh (booted by vm/run.sh): hands over to the node driver.
#   guest.sh <repo> <config.json>
repo=$1
config=$2
[ -c /dev/fuse ] || mknod /dev/fuse c 10 229
exec node "$repo/dist/scripts/bench/vm-read/guest.js" "$config"
