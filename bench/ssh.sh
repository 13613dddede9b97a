#!/usr/bin/env bash
# SSH access: session setup (connect, log in, run `true`, exit) through the
# devbox gateway and through `devbox ssh` (the HTTPS tunnel), median of N,
# beside OpenSSH's own sshd on loopback in the same run; scp throughput of
# a file (1 GiB by default) through the gateway beside sshd; and `devbox exec
# -- true` beside `podman exec`. Needs root, runc, podman, busybox-static,
# openssh-client and openssh-server. The server gets a bridge and subnet of
# its own (dbxbenchN, 10.76.N.0/24, for the first N nothing uses), removed at
# the end; sshd runs on a port of its own with a config in the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-50}
scp_mib=${SCP_MIB:-1024}

for tool in runc podman busybox curl flock ip iptables ssh scp ssh-keygen /usr/sbin/sshd; do
    case $tool in
        busybox) pkg=busybox-static ;; flock) pkg=util-linux ;; ip) pkg=iproute2 ;;
        ssh|scp|ssh-keygen) pkg=openssh-client ;; /usr/sbin/sshd) pkg=openssh-server ;; *) pkg=$tool ;;
    esac
    command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install $pkg" >&2; exit 1; }
done

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
work=$(mktemp -d /var/tmp/devbox-bench-ssh.XXXXXX)
port=$((20000 + RANDOM % 10000))
ssh_port=$((30000 + RANDOM % 10000))
sshd_port=$((40000 + RANDOM % 10000))
export DEVBOX_URL=http://127.0.0.1:$port DEVBOX_DATA_DIR=$work/data

cleanup() {
    "$devbox" rm bench >/dev/null 2>&1 || true
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    [ -n "${sshd:-}" ] && kill "$sshd" 2>/dev/null && wait "$sshd" 2>/dev/null
    podman rm -f "devbox-bench-ssh-$net" >/dev/null 2>&1 || true
    podman rmi -f "localhost/devbox-bench-ssh-$net:latest" >/dev/null 2>&1 || true
    ip link del "$bridge" 2>/dev/null || true
    iptables -t nat -D POSTROUTING -s "$subnet" ! -o "$bridge" -j MASQUERADE 2>/dev/null || true
    iptables -D FORWARD -j "DEVBOX-$bridge" 2>/dev/null || true
    iptables -F "DEVBOX-$bridge" 2>/dev/null || true
    iptables -X "DEVBOX-$bridge" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/root" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .

# The user's key, and sshd on loopback accepting it for root.
ssh-keygen -q -t ed25519 -N '' -f "$work/id"
ssh-keygen -q -t ed25519 -N '' -f "$work/sshd_host_key"
mkdir -p /run/sshd
cat >"$work/sshd_config" <<EOF
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $work/sshd_host_key
AuthorizedKeysFile $work/id.pub
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The work directory sits under /var/tmp, which is world-writable: the
# key file's path would fail the owner checks of StrictModes.
StrictModes no
Subsystem sftp internal-sftp
PidFile $work/sshd.pid
EOF
/usr/sbin/sshd -D -f "$work/sshd_config" -E "$work/sshd.log" &
sshd=$!

"$devbox" server --data-dir "$work/data" --listen "127.0.0.1:$port" --ssh-listen "127.0.0.1:$ssh_port" \
    --subnet "$subnet" --bridge "$bridge" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
"$devbox" image import "$work/rootfs.tar" --name bench:1 >/dev/null
"$devbox" create bench --image bench:1 >/dev/null
"$devbox" key add "$work/id.pub" >/dev/null
"$devbox" start bench >/dev/null

opts=(-i "$work/id" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no
      -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1e6}'; }

# Warm both up once (the first login wakes nothing here, but fills caches).
ssh "${opts[@]}" -p "$ssh_port" bench@127.0.0.1 true
ssh "${opts[@]}" -p "$sshd_port" root@127.0.0.1 true

: >"$work/gateway.ns"; : >"$work/tunnel.ns"; : >"$work/sshd.ns"
for _ in $(seq "$runs"); do
    t0=$(now); ssh "${opts[@]}" -p "$ssh_port" bench@127.0.0.1 true; t1=$(now)
    echo $((t1 - t0)) >>"$work/gateway.ns"
    t0=$(now); "$devbox" ssh bench -i "$work/id" -o BatchMode=yes -o LogLevel=ERROR -- true; t1=$(now)
    echo $((t1 - t0)) >>"$work/tunnel.ns"
    t0=$(now); ssh "${opts[@]}" -p "$sshd_port" root@127.0.0.1 true; t1=$(now)
    echo $((t1 - t0)) >>"$work/sshd.ns"
done
g=$(median <"$work/gateway.ns"); t=$(median <"$work/tunnel.ns"); s=$(median <"$work/sshd.ns")

# scp of one file, each way into a file system of the same kind (/var/tmp on
# the host for sshd, the devbox's root file system for the gateway).
head -c "$((scp_mib << 20))" /dev/urandom >"$work/big.bin"
sum=$(sha256sum <"$work/big.bin" | cut -d' ' -f1)
t0=$(now); scp -q "${opts[@]}" -P "$ssh_port" "$work/big.bin" bench@127.0.0.1:/root/big.bin; t1=$(now)
gw_ns=$((t1 - t0))
got=$(ssh "${opts[@]}" -p "$ssh_port" bench@127.0.0.1 "sha256sum /root/big.bin" | cut -d' ' -f1)
[ "$got" = "$sum" ] || { echo "the file arrived changed through the gateway" >&2; exit 1; }
ssh "${opts[@]}" -p "$ssh_port" bench@127.0.0.1 "rm /root/big.bin"
t0=$(now); scp -q "${opts[@]}" -P "$sshd_port" "$work/big.bin" root@127.0.0.1:"$work/copy.bin"; t1=$(now)
sshd_ns=$((t1 - t0))
cmp -s "$work/big.bin" "$work/copy.bin" || { echo "the file arrived changed through sshd" >&2; exit 1; }
rm -f "$work/copy.bin"

# exec -- true beside podman exec.
podman import -q "$work/rootfs.tar" "localhost/devbox-bench-ssh-$net:latest" >/dev/null
podman run -d -q --runtime runc --ulimit nofile=10000:10000 --ulimit nproc=10000:10000 --name "devbox-bench-ssh-$net" "localhost/devbox-bench-ssh-$net:latest" \
    sleep 1000000 >/dev/null
"$devbox" exec bench -- true
: >"$work/exec.ns"; : >"$work/podman.ns"
for _ in $(seq "$runs"); do
    t0=$(now); "$devbox" exec bench -- true; t1=$(now); echo $((t1 - t0)) >>"$work/exec.ns"
    t0=$(now); podman exec "devbox-bench-ssh-$net" true; t1=$(now); echo $((t1 - t0)) >>"$work/podman.ns"
done
e=$(median <"$work/exec.ns"); p=$(median <"$work/podman.ns")

printf '%-46s %10s\n' "session setup, ssh ... true (median of $runs)" "ms"
printf '%-46s %10s\n' "devbox gateway" "$g"
printf '%-46s %10s\n' "devbox ssh (HTTPS tunnel)" "$t"
printf '%-46s %10s\n' "OpenSSH sshd" "$s"
awk -v g="$g" -v t="$t" -v s="$s" 'BEGIN {
    printf "%-46s %10.2f\n", "gateway / sshd", g / s
    printf "%-46s %10.2f\n", "tunnel / sshd", t / s }'
awk -v n="$scp_mib" -v g="$gw_ns" -v s="$sshd_ns" 'BEGIN {
    printf "%-46s %10s\n", "scp of " n " MiB", "MiB/s"
    printf "%-46s %10.1f\n", "devbox gateway", n / (g / 1e9)
    printf "%-46s %10.1f\n", "OpenSSH sshd", n / (s / 1e9)
    printf "%-46s %10.2f\n", "gateway / sshd", s / g }'
printf '%-46s %10s\n' "exec -- true (median of $runs)" "ms"
printf '%-46s %10s\n' "devbox exec" "$e"
printf '%-46s %10s\n' "podman exec (runc)" "$p"
awk -v e="$e" -v p="$p" 'BEGIN { printf "%-46s %10.2f\n", "devbox / podman", e / p }'
# The agent's memory at rest: its init and its SSH server, in KiB.
agent_rss=$(ps -eo rss,args | awk '$2 ~ /devbox-agent/ && $0 !~ /shim/ {s += $1} END {print s}')
printf '%-46s %10s\n' "agent RSS, init + SSH server (KiB)" "$agent_rss"
