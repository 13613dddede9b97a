#!/usr/bin/env bash
# Start latency: time from a start request to a successful `exec true` in a
# busybox devbox, median of N runs, next to podman start + podman exec of the
# same image measured in the same run. Needs root, runc, podman, busybox-static.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-20}

for tool in runc podman busybox; do
    command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install ${tool/busybox/busybox-static}" >&2; exit 1; }
done

cargo build --release -q -p devbox-cli
devbox=$PWD/target/release/devbox
work=$(mktemp -d /var/tmp/devbox-bench.XXXXXX)
port=$((20000 + RANDOM % 20000))
export DEVBOX_URL=http://127.0.0.1:$port DEVBOX_DATA_DIR=$work/data
podman_opts=(--runtime runc --ulimit nofile=10000:10000 --ulimit nproc=10000:10000)

cleanup() {
    "$devbox" rm bench >/dev/null 2>&1 || true
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    podman rm -f devbox-bench >/dev/null 2>&1 || true
    podman rmi -f localhost/devbox-bench:latest >/dev/null 2>&1 || true
    ip link del dbxbench0 2>/dev/null || true
    iptables -t nat -D POSTROUTING -s 10.76.0.0/24 ! -o dbxbench0 -j MASQUERADE 2>/dev/null || true
    iptables -D FORWARD -j DEVBOX-dbxbench0 2>/dev/null || true
    iptables -F DEVBOX-dbxbench0 2>/dev/null || true
    iptables -X DEVBOX-dbxbench0 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The same busybox rootfs for both.
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/root" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .

"$devbox" server --data-dir "$work/data" --listen "127.0.0.1:$port" --subnet 10.76.0.0/24 --bridge dbxbench0 \
    >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
"$devbox" image import "$work/rootfs.tar" --name bench:1 >/dev/null
"$devbox" create bench --image bench:1 >/dev/null

podman import -q "$work/rootfs.tar" localhost/devbox-bench:latest >/dev/null
podman create -q "${podman_opts[@]}" --name devbox-bench localhost/devbox-bench:latest sleep 1000000 >/dev/null

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1e6}'; }

: >"$work/devbox.ns"; : >"$work/podman.ns"
for i in $(seq "$runs"); do
    # Alternate the two so machine noise falls on both alike.
    t0=$(now); "$devbox" start bench >/dev/null; "$devbox" exec bench -- true; t1=$(now)
    echo $((t1 - t0)) >>"$work/devbox.ns"
    "$devbox" stop bench >/dev/null

    t0=$(now); podman start devbox-bench >/dev/null; podman exec devbox-bench true; t1=$(now)
    echo $((t1 - t0)) >>"$work/podman.ns"
    podman stop -t 0 devbox-bench >/dev/null
done

d=$(median <"$work/devbox.ns"); p=$(median <"$work/podman.ns")
printf '%-34s %10s\n' "start + exec true (median of $runs)" "ms"
printf '%-34s %10s\n' "devbox" "$d"
printf '%-34s %10s\n' "podman (runc)" "$p"
awk -v d="$d" -v p="$p" 'BEGIN { printf "%-34s %10.2f\n", "devbox / podman", d / p }'
