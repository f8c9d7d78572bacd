#!/bin/sh
# Second half of the demo, run where a lazy path works (the host over fanotify, or the VM
# over cachefiles): push the image to a registry on 127.0.0.1 (Debian's docker-registry,
# started here), start the daemon, mount the image by reference, read a little, show how
# little was fetched.
set -eu
demo=$1
repo=$(cd "$(dirname "$0")/.." && pwd)
ondine="node $repo/dist/src/cli/main.js"
cache=${ONDINE_CACHE_DIR:-/var/cache/ondine}
sock=/run/ondine/ondine.sock
mnt=/run/ondine-demo-mnt
work=$(mktemp -d /tmp/ondine-demo-registry.XXXXXX)
mkdir -p "$cache" "$mnt"
ip link set lo up 2>/dev/null || true

echo "== 4. a registry on 127.0.0.1 (docker-registry, storage in $work)"
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})')
cat >"$work/config.yml" <<YML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $work/data }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$port }
YML
/usr/bin/docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
cleanup() { kill "$registry_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
i=0
until curl -fs "http://127.0.0.1:$port/v2/" >/dev/null; do
  i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/registry.log" >&2; echo "the registry did not start" >&2; exit 1; }
  sleep 0.1
done
ref=127.0.0.1:$port/demo/sample:latest

echo "== 5. ondine push: the blobs, the bootstrap layer and the manifest (Nydus conventions)"
$ondine push "$demo/image" "$ref"

echo "== 6. ondine mount $ref (starts the daemon on $cache; only the manifest and bootstrap are fetched)"
$ondine mount "$ref" "$mnt" --socket "$sock" --cache-dir "$cache"
echo "== 7. the tree is there before any data was fetched:"
ls -la "$mnt" | head -12
echo "== 8. read one small file:"
cat "$mnt/hello.txt"
total=$(du -sb "$demo/image/blobs" | cut -f1)
fetched=$($ondine status --socket "$sock" --json | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const j = JSON.parse(s); let n = 0;
    for (const src of Object.values(j.sources)) for (const b of Object.values(src)) n += b.bytes;
    console.log(n);
  });')
echo "fetched $fetched of $total blob bytes from the registry ($(node -e "console.log((100*$fetched/$total).toFixed(2))")%)"
echo "== 9. read everything and check it against the source"
if cmp "$mnt/big.bin" "$demo/src/big.bin" && diff -r --no-dereference "$mnt/doc" "$demo/src/doc" >/dev/null 2>&1; then
  echo "content identical"
else
  echo "CONTENT DIFFERS" >&2; exit 1
fi
$ondine umount "$mnt" --socket "$sock"
$ondine stop --socket "$sock"
echo "== done"
