#!/usr/bin/env bash
# Registry throughput: push then pull of a 1 GiB image (8 gzip layers of
# 128 MiB) with `skopeo copy` to and from the devbox server's registry, beside
# Debian's reference `docker-registry` (filesystem storage) started in the
# same run; the server's peak RSS during a monolithic 1 GiB blob upload; and
# 32 concurrent pulls of one 256 MiB image (manifest, config and layers
# fetched over HTTP, every digest checked) with aggregate throughput beside
# the reference. Prints the figures and the ratios. Needs root, skopeo,
# docker-registry, curl, runc, iptables, iproute2.
# The server gets a bridge and subnet of its own (dbxbenchN, 10.76.N.0/24,
# the first N nothing uses), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${CLIENTS:-32}

for tool in skopeo docker-registry curl sha256sum gzip flock ip iptables runc; do
    case $tool in
        flock) pkg=util-linux ;; ip) pkg=iproute2 ;; sha256sum) pkg=coreutils ;; *) pkg=$tool ;;
    esac
    command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install $pkg" >&2; exit 1; }
done

# Claim network N as bench/start.sh does: the lock on
# /run/devbox-bench-net-N.lock (fd 9, for the script's life), skipping any N
# whose bridge or subnet exists.
net=
in_use=$(ip -o -4 addr show; ip -4 route show)
for n in $(seq 0 255); do
    exec 9>"/run/devbox-bench-net-$n.lock"
    if flock -n 9 && [ ! -e "/sys/class/net/dbxbench$n" ] &&
        ! grep -qE "(^|[^0-9])10\.76\.$n\." <<<"$in_use"; then
        net=$n
        break
    fi
    exec 9>&-
done
[ -n "$net" ] || { echo "no free bench network (dbxbench0..255 or 10.76.N.0/24 all in use)" >&2; exit 1; }
bridge=dbxbench$net
subnet=10.76.$net.0/24

cargo build --release -q -p devbox-cli
devbox=$PWD/target/release/devbox
work=$(mktemp -d /var/tmp/devbox-bench-registry.XXXXXX)
port=$((20000 + RANDOM % 20000))
ref_port=$((port + 1))
ours=127.0.0.1:$port
theirs=127.0.0.1:$ref_port

cleanup() {
    for p in ${server:-} ${reference:-}; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
    done
    ip link del "$bridge" 2>/dev/null || true
    iptables -t nat -D POSTROUTING -s "$subnet" ! -o "$bridge" -j MASQUERADE 2>/dev/null || true
    iptables -D FORWARD -j "DEVBOX-$bridge" 2>/dev/null || true
    iptables -F "DEVBOX-$bridge" 2>/dev/null || true
    iptables -X "DEVBOX-$bridge" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s%N; }
# MiB/s for $1 bytes in $2 nanoseconds.
rate() { awk -v b="$1" -v ns="$2" 'BEGIN { printf "%.0f", b / 1048576 / (ns / 1e9) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# An OCI layout with image "big" (8 layers) and image "small" (its first 2
# layers, 256 MiB). Each layer is a tar of one file of random bytes, gzip'd
# (random bytes do not compress, so gzip -1 only frames them).
layout=$work/layout
mkdir -p "$layout/blobs/sha256" "$work/gen"
echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
layers=() diffs=() sizes=()
for i in $(seq 1 8); do
    head -c $((128 << 20)) /dev/urandom >"$work/gen/data$i"
    tar -C "$work/gen" -cf "$work/gen/layer.tar" "data$i"
    diffs+=("sha256:$(sha "$work/gen/layer.tar")")
    gzip -1 -c "$work/gen/layer.tar" >"$work/gen/layer.tar.gz"
    d=$(sha "$work/gen/layer.tar.gz")
    sizes+=("$(stat -c %s "$work/gen/layer.tar.gz")")
    mv "$work/gen/layer.tar.gz" "$layout/blobs/sha256/$d"
    layers+=("$d")
    rm -f "$work/gen/layer.tar" "$work/gen/data$i"
done
put_blob() { local d; d=$(printf '%s' "$1" | sha256sum | cut -d' ' -f1); printf '%s' "$1" >"$layout/blobs/sha256/$d"; echo "$d"; }
image() { # name count -> "digest size" of its manifest
    local n=$2 ids="" descs="" i config cd md
    for i in $(seq 0 $((n - 1))); do
        ids+="${ids:+,}\"${diffs[$i]}\""
        descs+="${descs:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:${layers[$i]}\",\"size\":${sizes[$i]}}"
    done
    config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$ids]}}"
    cd=$(put_blob "$config")
    local manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cd\",\"size\":${#config}},\"layers\":[$descs]}"
    md=$(put_blob "$manifest")
    echo "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$md\",\"size\":${#manifest},\"annotations\":{\"org.opencontainers.image.ref.name\":\"$1\"}}"
}
big=$(image big 8)
small=$(image small 2)
echo "{\"schemaVersion\":2,\"manifests\":[$big,$small]}" >"$layout/index.json"
big_bytes=$(( ${sizes[0]} + ${sizes[1]} + ${sizes[2]} + ${sizes[3]} + ${sizes[4]} + ${sizes[5]} + ${sizes[6]} + ${sizes[7]} ))
small_bytes=$(( ${sizes[0]} + ${sizes[1]} ))

"$devbox" server --data-dir "$work/data" --ssh-listen 127.0.0.1:0 --listen "$ours" --subnet "$subnet" --bridge "$bridge" \
    >"$work/server.log" 2>&1 &
server=$!
printf 'version: 0.1\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: "%s"}\nlog: {level: error}\n' \
    "$work/reference" "$theirs" >"$work/reference.yml"
docker-registry serve "$work/reference.yml" >"$work/reference.log" 2>&1 &
reference=$!
for _ in $(seq 200); do
    curl -s "http://$ours/healthz" >/dev/null 2>&1 && curl -s "http://$theirs/v2/" >/dev/null 2>&1 && break
    sleep 0.1
done
token=$(cat "$work/data/admin-token")

# Peak RSS of the server while it takes one 1 GiB blob, before anything else.
cat "$layout/blobs/sha256/${layers[0]}" "$layout/blobs/sha256/${layers[1]}" "$layout/blobs/sha256/${layers[2]}" \
    "$layout/blobs/sha256/${layers[3]}" "$layout/blobs/sha256/${layers[4]}" "$layout/blobs/sha256/${layers[5]}" \
    "$layout/blobs/sha256/${layers[6]}" "$layout/blobs/sha256/${layers[7]}" >"$work/gen/one"
one=$(sha "$work/gen/one")
rss_before=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
curl -sf -u "x:$token" -X POST -H 'Content-Type: application/octet-stream' -T "$work/gen/one" \
    "http://$ours/v2/bench/rss/blobs/uploads?digest=sha256:$one" -o /dev/null
rss_peak=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
rm -f "$work/gen/one"

# Push then pull of the 1 GiB image with skopeo, each registry in turn.
copy() { skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "$@" >/dev/null; }
declare -A push pull
for target in reference ours; do
    if [ $target = ours ]; then host=$ours; creds=(--dest-creds "x:$token"); src_creds=(--src-creds "x:$token")
    else host=$theirs; creds=(); src_creds=(); fi
    t=$(now); copy "${creds[@]}" "oci:$layout:big" "docker://$host/bench/big:1"; push[$target]=$(( $(now) - t ))
    rm -rf "$work/out"
    t=$(now); copy "${src_creds[@]}" "docker://$host/bench/big:1" "dir:$work/out"; pull[$target]=$(( $(now) - t ))
    for f in "$work/out"/*; do
        case $(basename "$f") in manifest.json|version) continue ;; esac
        [ "$(sha "$f")" = "$(basename "$f")" ] || { echo "digest mismatch in a pull from $target: $f" >&2; exit 1; }
    done
    rm -rf "$work/out"
    copy "${creds[@]}" "oci:$layout:small" "docker://$host/bench/small:1"
done

# 32 concurrent pulls of the 256 MiB image: each client fetches the
# manifest, then the config and layers, and checks every digest.
small_manifest=$(grep -oE 'sha256:[0-9a-f]{64}' <<<"$small" | head -1)
pull_one() { # host auth...
    local host=$1; shift
    local m d
    m=$(curl -sf "$@" -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$host/v2/bench/small/manifests/1")
    [ "sha256:$(printf '%s' "$m" | sha256sum | cut -d' ' -f1)" = "$small_manifest" ] || { echo "manifest digest mismatch" >&2; return 1; }
    for d in $(grep -oE 'sha256:[0-9a-f]{64}' <<<"$m"); do
        [ "sha256:$(curl -sf "$@" "http://$host/v2/bench/small/blobs/$d" | sha256sum | cut -d' ' -f1)" = "$d" ] ||
            { echo "blob digest mismatch: $d" >&2; return 1; }
    done
}
declare -A fanout
for target in reference ours; do
    if [ $target = ours ]; then host=$ours; auth=(-u "x:$token"); else host=$theirs; auth=(); fi
    t=$(now)
    pids=()
    for _ in $(seq "$clients"); do pull_one "$host" "${auth[@]}" & pids+=($!); done
    failed=0
    for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
    fanout[$target]=$(( $(now) - t ))
    [ $failed = 0 ] || { echo "$failed of $clients concurrent pulls from $target failed" >&2; exit 1; }
done

gib=$big_bytes
echo "registry benchmark: 1 GiB image in 8 layers ($gib bytes), skopeo copy; $clients concurrent pulls of $small_bytes bytes"
printf '%-34s %12s %12s %8s\n' "" "devbox" "reference" "ratio"
p_ours=$(rate "$gib" "${push[ours]}"); p_ref=$(rate "$gib" "${push[reference]}")
l_ours=$(rate "$gib" "${pull[ours]}"); l_ref=$(rate "$gib" "${pull[reference]}")
f_ours=$(rate $((small_bytes * clients)) "${fanout[ours]}"); f_ref=$(rate $((small_bytes * clients)) "${fanout[reference]}")
printf '%-34s %9s MiB/s %6s MiB/s %8s\n' "push (skopeo, oci layout -> registry)" "$p_ours" "$p_ref" "$(ratio "$p_ours" "$p_ref")"
printf '%-34s %9s MiB/s %6s MiB/s %8s\n' "pull (skopeo, registry -> dir)" "$l_ours" "$l_ref" "$(ratio "$l_ours" "$l_ref")"
printf '%-34s %9s MiB/s %6s MiB/s %8s\n' "$clients concurrent pulls, aggregate" "$f_ours" "$f_ref" "$(ratio "$f_ours" "$f_ref")"
printf 'server peak RSS during a 1 GiB blob upload: %d MiB (%d MiB before it)\n' $((rss_peak / 1024)) $((rss_before / 1024))
echo "all digests checked: every pulled blob and manifest matched"
