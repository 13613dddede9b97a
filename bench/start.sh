#!/usr/bin/env bash
# Start latency: time from a start request to a successful `exec true` in a
# busybox devbox, median of N runs, next to podman start + podman exec of the
# same image measured in the same run. Needs root, runc, podman, busybox-static.
# The devbox server gets a bridge and subnet of its own (dbxbenchN and
# 10.76.N.0/24 for the first N that nothing uses), created by the server and
# removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-20}

for tool in runc podman busybox curl flock ip iptables; do
    case $tool in
        busybox) pkg=busybox-static ;; flock) pkg=util-linux ;; ip) pkg=iproute2 ;; *) pkg=$tool ;;
    esac
    command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install $pkg" >&2; exit 1; }
done

# Claim network N: hold the lock on /run/devbox-bench-net-N.lock (fd 9, until
# the script ends) so that a second run picks another, and skip any N whose
# bridge or subnet already exists, since removing it at the end would break
# whoever made it.
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
if [ -z "$net" ]; then
    echo "no free bench network: bridges dbxbench0 to dbxbench255 (or subnets 10.76.N.0/24) all exist or are in use" >&2
    exit 1
fi
bridge=dbxbench$net
subnet=10.76.$net.0/24

cargo build --release -q -p devbox-cli
devbox=$PWD/target/release/devbox
work=$(mktemp -d /var/tmp/devbox-bench.XXXXXX)
port=$((20000 + RANDOM % 20000))
export DEVBOX_URL=http://127.0.0.1:$port DEVBOX_DATA_DIR=$work/data
podman_opts=(--runtime runc --ulimit nofile=10000:10000 --ulimit nproc=10000:10000)

cleanup() {
    "$devbox" rm bench >/dev/null 2>&1 || true
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    podman rm -f "devbox-bench-$net" >/dev/null 2>&1 || true
    podman rmi -f "localhost/devbox-bench-$net:latest" >/dev/null 2>&1 || true
    ip link del "$bridge" 2>/dev/null || true
    iptables -t nat -D POSTROUTING -s "$subnet" ! -o "$bridge" -j MASQUERADE 2>/dev/null || true
    iptables -D FORWARD -j "DEVBOX-$bridge" 2>/dev/null || true
    iptables -F "DEVBOX-$bridge" 2>/dev/null || true
    iptables -X "DEVBOX-$bridge" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The same busybox rootfs for both.
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/root" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .

"$devbox" server --data-dir "$work/data" --ssh-listen 127.0.0.1:0 --listen "127.0.0.1:$port" --subnet "$subnet" --bridge "$bridge" \
    >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
"$devbox" image import "$work/rootfs.tar" --name bench:1 >/dev/null
"$devbox" create bench --image bench:1 >/dev/null

podman import -q "$work/rootfs.tar" "localhost/devbox-bench-$net:latest" >/dev/null
podman create -q "${podman_opts[@]}" --name "devbox-bench-$net" "localhost/devbox-bench-$net:latest" sleep 1000000 >/dev/null

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1e6}'; }

: >"$work/devbox.ns"; : >"$work/podman.ns"
for i in $(seq "$runs"); do
    # Alternate the two so machine noise falls on both alike.
    t0=$(now); "$devbox" start bench >/dev/null; "$devbox" exec bench -- true; t1=$(now)
    echo $((t1 - t0)) >>"$work/devbox.ns"
    "$devbox" stop bench >/dev/null

    t0=$(now); podman start "devbox-bench-$net" >/dev/null; podman exec "devbox-bench-$net" true; t1=$(now)
    echo $((t1 - t0)) >>"$work/podman.ns"
    podman stop -t 0 "devbox-bench-$net" >/dev/null
done

d=$(median <"$work/devbox.ns"); p=$(median <"$work/podman.ns")
printf '%-34s %10s\n' "start + exec true (median of $runs)" "ms"
printf '%-34s %10s\n' "devbox" "$d"
printf '%-34s %10s\n' "podman (runc)" "$p"
awk -v d="$d" -v p="$p" 'BEGIN { printf "%-34s %10.2f\n", "devbox / podman", d / p }'
