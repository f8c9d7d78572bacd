#!/bin/sh
# Second half of the demo, run where a lazy path works (the host over fanotify, or the VM
# over cachefiles): start the daemon, mount the image lazily, read a little, show how little
# was fetched.
set -eu
demo=$1
repo=$(cd "$(dirname "$0")/.." && pwd)
ondine="node $repo/dist/src/cli/main.js"
cache=${ONDINE_CACHE_DIR:-/var/cache/ondine}
sock=/run/ondine/ondine.sock
mnt=/run/ondine-demo-mnt
mkdir -p "$cache" "$mnt"

echo "== 4. ondine mount (starts the daemon on $cache)"
$ondine mount "$demo/image" "$mnt" --socket "$sock" --cache-dir "$cache"
echo "== 5. the tree is there before any data was fetched:"
ls -la "$mnt" | head -12
echo "== 6. read one small file:"
cat "$mnt/hello.txt"
total=$(du -sb "$demo/image/blobs" | cut -f1)
fetched=$($ondine status --socket "$sock" --json | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const j = JSON.parse(s); let n = 0;
    for (const dir of Object.values(j.sources)) for (const b of Object.values(dir)) n += b.bytes;
    console.log(n);
  });')
echo "fetched $fetched of $total blob bytes ($(node -e "console.log((100*$fetched/$total).toFixed(2))")%)"
echo "== 7. read everything and check it against the source"
if cmp "$mnt/big.bin" "$demo/src/big.bin" && diff -r --no-dereference "$mnt/doc" "$demo/src/doc" >/dev/null 2>&1; then
  echo "content identical"
else
  echo "CONTENT DIFFERS" >&2; exit 1
fi
$ondine umount "$mnt" --socket "$sock"
$ondine stop --socket "$sock"
echo "== done"
