#!/usr/bin/env bash
# Commit benchmarks, each beside podman on the same busybox base image in the
# same run. Needs root, runc, podman, busybox-static, python3, curl.
#
#  1. Small incremental commit: a devbox whose earlier changes (SMALL_SIZES
#     MiB in SMALL_FILES files) are already committed gets 1 KiB more; the
#     whole `devbox commit` CLI call is timed, median of RUNS. Beside it
#     `podman commit` of a container holding the same, median of PODMAN_RUNS.
#  2. Large commit: LARGE_MIB of incompressible data in 20 files, and
#     LARGE_MIB of source-like text in files of about 16 KiB; `devbox commit`
#     with gzip and with zstd (`devbox server --commit-compression zstd`),
#     in MB/s (10^6 bytes of file data a second) with the CPU cores the
#     server kept busy and its peak RSS; `podman commit` of the same.
#  3. Stop then start: `devbox stop`, `devbox start` and `devbox exec true`
#     of a devbox with STOP_MIB uncommitted, and with nothing uncommitted;
#     beside `podman stop`, `podman start` and `podman exec true` (which
#     commit nothing). Median of STOP_RUNS.
#  4. Squash: SQUASH_COMMITS commits of SQUASH_MIB each merged into one by
#     the server after a stop, in MB/s, with the server's peak RSS and the
#     bytes the following `devbox gc` reclaims.
#
# The defaults finish in about 15 minutes on 2 cores; smaller sizes for a
# quick look: SMALL_SIZES="16 64" SMALL_FILES=1000 LARGE_MIB=256 STOP_MIB=128
# SQUASH_MIB=16 RUNS=3 PODMAN_RUNS=1 STOP_RUNS=1 bench/commit.sh
# NO_PODMAN=1 leaves podman out; SCENARIOS="small large stop squash" picks
# scenarios; KEEP_LOG=FILE keeps the server's log there.
#
# The devbox server gets a bridge and subnet of its own (dbxbenchN and
# 10.76.N.0/24 for the first N that nothing uses), created by the server and
# removed at the end, as bench/start.sh does. Scratch data lives in a
# directory under /var/tmp, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bench_dir=$PWD/bench

small_sizes=${SMALL_SIZES:-"100 1024 4096"}
small_files=${SMALL_FILES:-10000}
runs=${RUNS:-5}
podman_runs=${PODMAN_RUNS:-2}
large_mib=${LARGE_MIB:-2048}
stop_mib=${STOP_MIB:-1024}
stop_runs=${STOP_RUNS:-3}
squash_commits=${SQUASH_COMMITS:-8}
squash_mib=${SQUASH_MIB:-128}
no_podman=${NO_PODMAN:-}
scenarios=" ${SCENARIOS:-small large stop squash} "
want() { [[ $scenarios == *" $1 "* ]]; }

tools="runc busybox curl flock ip iptables python3"
[ -n "$no_podman" ] || tools="$tools podman"
for tool in $tools; do
    case $tool in
        busybox) pkg=busybox-static ;; flock) pkg=util-linux ;; ip) pkg=iproute2 ;; *) pkg=$tool ;;
    esac
    command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install $pkg" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root: the server mounts overlays and runs runc" >&2; exit 1; }

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
pimage=localhost/devbox-bench-$net
pc=devbox-bench-$net
server=

cleanup() {
    for d in $("$devbox" ls --json 2>/dev/null | python3 -c 'import json,sys; [print(d["name"]) for d in json.load(sys.stdin)]' 2>/dev/null); do
        "$devbox" rm "$d" >/dev/null 2>&1 || true
    done
    stop_server
    if [ -n "${KEEP_LOG:-}" ] && [ -e "$work/server.log" ]; then cp "$work/server.log" "$KEEP_LOG"; fi
    if [ -z "$no_podman" ]; then
        podman rm -f "$pc" >/dev/null 2>&1 || true
        podman images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep "^$pimage" |
            xargs -r podman rmi -f >/dev/null 2>&1 || true
    fi
    ip link del "$bridge" 2>/dev/null || true
    iptables -t nat -D POSTROUTING -s "$subnet" ! -o "$bridge" -j MASQUERADE 2>/dev/null || true
    iptables -D FORWARD -j "DEVBOX-$bridge" 2>/dev/null || true
    iptables -F "DEVBOX-$bridge" 2>/dev/null || true
    iptables -X "DEVBOX-$bridge" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The server, with extra flags; devboxes keep running across a restart.
start_server() {
    "$devbox" server --data-dir "$work/data" --ssh-listen 127.0.0.1:0 --listen "127.0.0.1:$port" --subnet "$subnet" \
        --bridge "$bridge" --gc-grace 0s "$@" >>"$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return
        kill -0 "$server" 2>/dev/null || break
        sleep 0.1
    done
    echo "the devbox server did not come up; its log:" >&2
    tail -20 "$work/server.log" >&2
    exit 1
}
stop_server() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        server=
    fi
}

now() { date +%s%N; }
# Runs a command for its effect: its output goes nowhere, and what it said on
# stderr (a notice while it waits) is shown only when it fails.
q() {
    local err
    err=$("$@" 2>&1 >/dev/null) || { echo "$err" >&2; return 1; }
}
ms() { awk -v ns="$1" 'BEGIN { printf "%.1f", ns / 1e6 }'; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1e6}'; }
# CPU seconds the server used so far (user + system).
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$server/stat"; }
# Resets the server's peak RSS to what it uses now; peak_rss prints it in MiB.
reset_peak() { echo 5 >"/proc/$server/clear_refs"; }
peak_rss() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$server/status"; }
results=$work/results
: >"$results"
result() { printf '%-58s %s\n' "$1" "$2" | tee -a "$results"; }
section() { printf '\n%s\n' "$1" | tee -a "$results"; }

# Shell snippets both tools run inside their container.
write_files() { # DIR COUNT BYTES_EACH: incompressible files
    echo "mkdir -p $1; i=0; while [ \$i -lt $2 ]; do head -c $3 /dev/urandom > $1/f\$i; i=\$((i+1)); done"
}
dbx() { q "$devbox" exec "$1" -- sh -c "$2"; }
pod() { podman exec "$pc" sh -c "$1"; }

new_devbox() { # NAME
    q "$devbox" create "$1" --image bench:1
    q "$devbox" start "$1"
}
new_container() {
    podman rm -f "$pc" >/dev/null 2>&1 || true
    # The shell exits at SIGTERM, so `podman stop` does not wait for its timeout.
    podman run -d -q "${podman_opts[@]}" --name "$pc" "$pimage:base" \
        sh -c 'trap "exit 0" TERM; sleep 1000000 & wait' >/dev/null
}
podman_commit() { # TAG: times `podman commit` in ns, removes the image
    local t0 t1
    t0=$(now); podman commit -q "$pc" "$pimage:$1" >/dev/null; t1=$(now)
    podman rmi -f "$pimage:$1" >/dev/null
    echo $((t1 - t0))
}
reclaim() { q "$devbox" gc; }

# The same busybox rootfs for both.
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/root" "$work/rootfs/tmp"
chmod 1777 "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$work/rootfs/etc/passwd"
echo 'root:x:0:' >"$work/rootfs/etc/group"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
if [ -z "$no_podman" ]; then
    podman import -q "$work/rootfs.tar" "$pimage:base" >/dev/null
fi
started=$(now)

start_server
q "$devbox" image import "$work/rootfs.tar" --name bench:1
echo "server: $DEVBOX_URL, data in $work/data, bridge $bridge; log in $work/server.log" >&2

# 1. Small incremental commits.
if want small; then
section "small incremental commit after 1 KiB (median; earlier changes in $small_files files, committed)"
for mib in $small_sizes; do
    each=$((mib * 1024 * 1024 / small_files))
    new_devbox small
    dbx small "$(write_files /root/data "$small_files" "$each")"
    q "$devbox" commit small -m "earlier changes"
    : >"$work/small.ns"
    for i in $(seq "$runs"); do
        dbx small "head -c 1024 /dev/urandom > /root/kib-$i"
        t0=$(now); q "$devbox" commit small; t1=$(now)
        echo $((t1 - t0)) >>"$work/small.ns"
    done
    d=$(median <"$work/small.ns")
    echo "$mib $d" >>"$work/small.medians"
    result "devbox commit, $mib MiB earlier (ms)" "$d"
    q "$devbox" rm small
    reclaim
    if [ -z "$no_podman" ]; then
        new_container
        # No commit of the earlier changes first: `podman commit` packs the
        # whole container layer every time, whatever it committed before.
        pod "$(write_files /root/data "$small_files" "$each")"
        : >"$work/podman-small.ns"
        for i in $(seq "$podman_runs"); do
            pod "head -c 1024 /dev/urandom > /root/kib-$i"
            podman_commit "small-$i" >>"$work/podman-small.ns"
        done
        p=$(median <"$work/podman-small.ns")
        result "podman commit, $mib MiB earlier (ms)" "$p"
        awk -v d="$d" -v p="$p" 'BEGIN { printf "%-58s %.1fx\n", "  podman / devbox", p / d }' | tee -a "$results"
        podman rm -f "$pc" >/dev/null
    fi
done
awk 'NR == 1 { first = $2; fmib = $1 } { last = $2; lmib = $1 }
     END { if (NR > 1) printf "%-58s %.2f\n", "devbox median at " lmib " MiB / at " fmib " MiB", last / first }' \
    "$work/small.medians" | tee -a "$results"
fi

# 2. Large commits. The source-like tree is made once, so every tool gets
# the same bytes.
if want large; then
python3 "$bench_dir/source_tree.py" "$large_mib" >"$work/src.tar"
big_each=$((large_mib * 1024 * 1024 / 20))
large_bytes=$((large_mib * 1024 * 1024))
fill_large() { # KIND DEVBOX|-: puts the data set into the devbox (or, with -, the container)
    if [ "$1" = random ]; then
        if [ "$2" = - ]; then pod "$(write_files /root/big 20 "$big_each")"; else dbx "$2" "$(write_files /root/big 20 "$big_each")"; fi
    elif [ "$2" = - ]; then
        podman exec -i "$pc" tar -x -C /root -f - <"$work/src.tar"
    else
        q "$devbox" exec -i "$2" -- tar -x -C /root -f - <"$work/src.tar"
    fi
}
large_devbox() { # KIND COMPRESSION
    local t0 t1 c0 c1
    new_devbox large
    fill_large "$1" large
    reset_peak
    c0=$(cpu); t0=$(now); q "$devbox" commit large; t1=$(now); c1=$(cpu)
    awk -v b="$large_bytes" -v ns=$((t1 - t0)) -v c0="$c0" -v c1="$c1" -v rss="$(peak_rss)" -v l="devbox commit, $1, $2" \
        'BEGIN { printf "%-58s %.0f MB/s (%.1fs, %.1f cores, peak RSS %d MiB)\n", l, b / (ns / 1e9) / 1e6, ns / 1e9, (c1 - c0) / (ns / 1e9), rss }' |
        tee -a "$results"
    q "$devbox" rm large
    reclaim
}
large_podman() { # KIND
    [ -z "$no_podman" ] || return 0
    new_container
    fill_large "$1" -
    local ns
    ns=$(podman_commit large)
    awk -v b="$large_bytes" -v ns="$ns" -v l="podman commit, $1" \
        'BEGIN { printf "%-58s %.0f MB/s (%.1fs)\n", l, b / (ns / 1e9) / 1e6, ns / 1e9 }' | tee -a "$results"
    podman rm -f "$pc" >/dev/null
}
section "large commit of $large_mib MiB (file data per second)"
for kind in random source; do
    large_devbox "$kind" gzip
    large_podman "$kind"
done
stop_server
start_server --commit-compression zstd
for kind in random source; do
    large_devbox "$kind" zstd
done
rm -f "$work/src.tar"
stop_server
start_server
fi

# 3. Stop then start.
if want stop; then
section "stop, start and exec true (median of $stop_runs; ms)"
stop_start() { # TOOL LABEL FILL: times stop, then start + exec, after FILL
    : >"$work/stop.ns"; : >"$work/start.ns"
    for i in $(seq "$stop_runs"); do
        local t0 t1 t2
        if [ "$1" = devbox ]; then
            [ -z "$3" ] || dbx cycle "$(write_files "/root/run-$i" $((stop_mib)) 1048576)"
            t0=$(now); q "$devbox" stop cycle; t1=$(now)
            q "$devbox" start cycle; "$devbox" exec cycle -- true; t2=$(now)
        else
            [ -z "$3" ] || pod "$(write_files "/root/run-$i" $((stop_mib)) 1048576)"
            t0=$(now); podman stop "$pc" >/dev/null; t1=$(now)
            podman start "$pc" >/dev/null; podman exec "$pc" true; t2=$(now)
        fi
        echo $((t1 - t0)) >>"$work/stop.ns"; echo $((t2 - t1)) >>"$work/start.ns"
    done
    local s st
    s=$(median <"$work/stop.ns"); st=$(median <"$work/start.ns")
    awk -v s="$s" -v st="$st" -v l="$1, $2" 'BEGIN { printf "%-58s stop %.1f + start %.1f = %.1f\n", l, s, st, s + st }' |
        tee -a "$results"
}
new_devbox cycle
stop_start devbox "$stop_mib MiB uncommitted" fill
stop_start devbox "nothing uncommitted" ""
q "$devbox" rm cycle
reclaim
if [ -z "$no_podman" ]; then
    new_container
    stop_start podman "$stop_mib MiB uncommitted" fill
    stop_start podman "nothing uncommitted" ""
    podman rm -f "$pc" >/dev/null
fi
fi

# 4. Squash: the server merges a stopped devbox's layers once it has more
# than --squash-after of its own; keeping one commit's image lets the gc
# after it reclaim the layers the merge replaced.
if want squash; then
stop_server
start_server --squash-after $((squash_commits - 1)) --keep-commits 1
section "squash of $squash_commits commits of $squash_mib MiB"
new_devbox squash
for i in $(seq "$squash_commits"); do
    dbx squash "$(write_files "/root/sq-$i" $((squash_mib)) 1048576)"
    q "$devbox" commit squash
done
merges_before=$(grep -c "merged the devbox's layers" "$work/server.log" || true)
reset_peak
q "$devbox" stop squash
merged=
for _ in $(seq 1200); do
    if [ "$(grep -c "merged the devbox's layers" "$work/server.log" || true)" -gt "$merges_before" ]; then
        merged=$(grep "merged the devbox's layers" "$work/server.log" | tail -1)
        break
    fi
    sleep 0.25
done
if [ -z "$merged" ]; then
    result "squash" "did not happen within 5 minutes (see $work/server.log)"
else
    # took=1.234s, 850.1ms or 12µs, as tracing prints a Duration.
    took=$(sed -E 's/\x1b\[[0-9;]*m//g; s/.*took=([0-9.]+)(ms|µs|us|ns|s).*/\1 \2/' <<<"$merged" |
        awk '{ f = ($2 == "s") ? 1 : ($2 == "ms") ? 1e-3 : ($2 == "ns") ? 1e-9 : 1e-6; printf "%.3f", $1 * f }')
    awk -v b=$((squash_commits * squash_mib * 1024 * 1024)) -v t="$took" -v rss="$(peak_rss)" \
        'BEGIN { printf "%-58s %.0f MB/s (%.1fs, peak RSS %d MiB with the stop)\n", "devbox squash", b / t / 1e6, t, rss }' |
        tee -a "$results"
    gc=$("$devbox" gc --json 2>"$work/gc.err") || { cat "$work/gc.err" >&2; exit 1; }
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("%-58s %.0f MiB (%d blobs, %.0f MiB; %d layer directories, %.0f MiB; %d commit images expired)" % ("gc after the squash reclaimed", (r["blob_bytes"]+r["layer_bytes"])/2**20, r["blobs_removed"], r["blob_bytes"]/2**20, r["layer_dirs_removed"], r["layer_bytes"]/2**20, r["commits_expired"]))' "$gc" |
        tee -a "$results"
fi
q "$devbox" rm squash
reclaim
fi

section "total run time: $(( ($(now) - started) / 1000000000 ))s"
