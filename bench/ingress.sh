#!/usr/bin/env bash
# Ingress throughput and latency: wrk (64 connections) through the server's
# proxy to busybox httpd in a devbox, beside Debian's nginx as a reverse
# proxy (with upstream keep-alive) to the same httpd, small and 1 MiB
# answers, measured in the same run; then the time to first byte of a
# request that wakes the stopped devbox (median of N). Needs root, runc,
# busybox-static, wrk, nginx (nginx-light), curl. The server gets a bridge
# and subnet of its own (dbxbenchN, 10.76.N.0/24), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-10s}
wakes=${WAKES:-5}

for tool in runc busybox wrk nginx curl flock ip iptables; do
    case $tool in
        busybox) pkg=busybox-static ;; flock) pkg=util-linux ;; ip) pkg=iproute2 ;; nginx) pkg=nginx-light ;; *) pkg=$tool ;;
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
[ -n "$net" ] || { echo "no free bench network (dbxbench0..255 all in use)" >&2; exit 1; }
bridge=dbxbench$net
subnet=10.76.$net.0/24

cargo build --release -q -p devbox-cli
devbox=$PWD/target/release/devbox
work=$(mktemp -d /var/tmp/devbox-bench.XXXXXX)
port=$((20000 + RANDOM % 20000))
nginx_port=$((port + 1))
export DEVBOX_URL=http://127.0.0.1:$port DEVBOX_DATA_DIR=$work/data

cleanup() {
    "$devbox" rm web >/dev/null 2>&1 || true
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
    ip link del "$bridge" 2>/dev/null || true
    iptables -t nat -D POSTROUTING -s "$subnet" ! -o "$bridge" -j MASQUERADE 2>/dev/null || true
    iptables -D FORWARD -j "DEVBOX-$bridge" 2>/dev/null || true
    iptables -F "DEVBOX-$bridge" 2>/dev/null || true
    iptables -X "DEVBOX-$bridge" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/www"
cp /bin/busybox "$work/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
echo 'hello' > "$work/rootfs/www/small"
head -c 1048576 /dev/urandom > "$work/rootfs/www/big"

"$devbox" server --data-dir "$work/data" --ssh-listen 127.0.0.1:0 --listen "127.0.0.1:$port" --subnet "$subnet" --bridge "$bridge" \
    >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
"$devbox" image import "$work/rootfs" --name web:1 >/dev/null
"$devbox" create web --image web:1 --cmd 'httpd -f -p 8080 -h /www' >/dev/null
"$devbox" start web >/dev/null
"$devbox" port set web 8080 --access public >/dev/null
ip=$("$devbox" show web --json | sed -n 's/.*"ip": *"\([0-9.]*\)".*/\1/p')
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/proxy/web/8080/small" >/dev/null && break; sleep 0.1; done

cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 1024; }
http {
    access_log off;
    upstream devbox { server $ip:8080; keepalive 64; }
    server {
        listen 127.0.0.1:$nginx_port;
        location / { proxy_pass http://devbox; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
NGINX
nginx -c "$work/nginx.conf"
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$nginx_port/small" >/dev/null && break; sleep 0.1; done

# requests/s and p99 latency (ms) of one wrk run.
measure() {
    wrk -t2 -c64 -d"$duration" --latency "$1" 2>&1 | awk '
        /Requests\/sec/ {rps=$2}
        /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; p99=v}
        END {printf "%.0f %.2f", rps, p99}'
}

printf '%-8s %12s %10s %12s %10s %8s %8s\n' answer devbox-rps p99-ms nginx-rps p99-ms rps% p99x
for f in small big; do
    read -r d_rps d_p99 <<<"$(measure "http://127.0.0.1:$port/proxy/web/8080/$f")"
    read -r n_rps n_p99 <<<"$(measure "http://127.0.0.1:$nginx_port/$f")"
    awk -v f="$f" -v a="$d_rps" -v b="$d_p99" -v c="$n_rps" -v d="$n_p99" \
        'BEGIN {printf "%-8s %12d %10.2f %12d %10.2f %7.0f%% %8.2f\n", f, a, b, c, d, 100*a/c, b/d}'
done

# Time to first byte of a request that wakes the stopped devbox.
ttfb=()
for _ in $(seq "$wakes"); do
    "$devbox" stop web >/dev/null
    ttfb+=("$(curl -s -o /dev/null -w '%{time_starttransfer}' "http://127.0.0.1:$port/proxy/web/8080/small")")
done
printf '%s\n' "${ttfb[@]}" | sort -n | awk '{a[NR]=$1*1000} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "wake-on-request time to first byte: median %.0f ms of %d (min %.0f, max %.0f)\n", m, NR, a[1], a[NR]}'
