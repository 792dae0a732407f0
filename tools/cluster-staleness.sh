#!/bin/sh
# cluster-staleness.sh - the cluster sync's figures: staleness, Redis
# traffic, and the record path's cost
#
# Usage: tools/cluster-staleness.sh [-n SAMPLES] [-r RATE] [-t SECONDS]
#                                   [-i INTERVAL_MS] [-a ROUNDS]
#
# Starts redis-server on a free loopback port (no persistence) and three
# nodes a, b, c (stores, configurations, inaudit-sync agents) in a
# private directory, then measures, from the build tree:
#   1. staleness on an idle cluster: SAMPLES records on a, each timed
#      until b's cluster-wide count shows it (inaudit-cluster-probe lat);
#   2. the same while a records RATE events a second (default 10000),
#      with Redis's INFO counters read before and after: commands and
#      bytes in and out per second, for the loaded node and in all;
#   3. the record path's cost at RATE events a second on a, with a's
#      agent stopped and then running, ROUNDS times each, alternating
#      (inaudit-cluster-probe load); b's and c's agents are stopped for
#      this, so that on one machine only a's own agent competes with a's
#      writers, as on a real node.
# Everything started is stopped at the end.
#
# SPDX-License-Identifier: MIT

set -u
top=$(cd "$(dirname "$0")/.." && pwd)
SYNC=$top/tools/inaudit-sync
PROBE=$top/tools/inaudit-cluster-probe
SAMPLES=200
RATE=10000
SECONDS_LOAD=10
INTERVAL=100
ROUNDS=2

while getopts n:r:t:i:a: opt; do
    case $opt in
    n) SAMPLES=$OPTARG ;;
    r) RATE=$OPTARG ;;
    t) SECONDS_LOAD=$OPTARG ;;
    i) INTERVAL=$OPTARG ;;
    a) ROUNDS=$OPTARG ;;
    *)
        echo "usage: $0 [-n SAMPLES] [-r RATE] [-t SECONDS] [-i INTERVAL_MS] [-a ROUNDS]" >&2
        exit 2
        ;;
    esac
done
for p in "$SYNC" "$PROBE"; do
    [ -x "$p" ] || { echo "$0: $p is missing: run make" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "$0: no redis-server" >&2; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/inaudit-staleness.XXXXXX") || exit 1
redis_pid=
cleanup() {
    for f in "$dir"/agent-*.pid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
    done
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

port=$((30000 + $$ % 20000))
for try in 1 2 3 4 5 6 7 8 9 10; do
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$dir" --logfile "$dir/redis.log" &
    redis_pid=$!
    i=0
    while [ $i -lt 50 ] && [ "$(redis-cli -p "$port" ping 2>/dev/null)" != PONG ]; do
        kill -0 "$redis_pid" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
    redis_pid=
    port=$((port + 1))
done
[ -n "$redis_pid" ] || { echo "$0: cannot start redis-server" >&2; exit 1; }

for n in a b c; do
    cat >"$dir/$n.conf" <<EOF
inbound_audit {
    store = "$dir/store-$n"
    map_size = "1G"
    monitors = {"60,10", "300,12", "3600,24"}
    cluster {
        redis = "127.0.0.1:$port"
        node = "$n"
        interval = $INTERVAL
    }
}
EOF
done
agent_start() {
    "$SYNC" -c "$dir/$1.conf" -f >>"$dir/agent-$1.log" 2>&1 &
    echo $! >"$dir/agent-$1.pid"
}
agent_stop() {
    kill "$(cat "$dir/agent-$1.pid")" 2>/dev/null
    wait "$(cat "$dir/agent-$1.pid")" 2>/dev/null
    rm -f "$dir/agent-$1.pid"
}
# info FIELD - a counter of Redis's INFO stats
info() {
    redis-cli -p "$port" info stats | tr -d '\r' | sed -n "s/^$1://p"
}

# Make the stores, then start the agents.
for n in a b c; do
    "$PROBE" load "$dir/$n.conf" 100 0.1 >/dev/null || exit 1
    agent_start $n
done
sleep 1

echo "# cluster-staleness: 3 nodes, interval $INTERVAL ms, redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $(nproc) CPUs"
echo "## 1. staleness, idle cluster (record on a -> visible on b)"
"$PROBE" lat "$dir/a.conf" "$dir/b.conf" "$SAMPLES"

echo "## 2. staleness while a records $RATE events/s; Redis traffic"
c0=$(info total_commands_processed)
i0=$(info total_net_input_bytes)
o0=$(info total_net_output_bytes)
t0=$(date +%s.%N)
"$PROBE" load "$dir/a.conf" "$RATE" "$SECONDS_LOAD" >"$dir/load.out" &
loadpid=$!
"$PROBE" lat "$dir/a.conf" "$dir/b.conf" $((SECONDS_LOAD * 1000 / 150)) 100
wait $loadpid
t1=$(date +%s.%N)
c1=$(info total_commands_processed)
i1=$(info total_net_input_bytes)
o1=$(info total_net_output_bytes)
sed 's/^/load on a: /' "$dir/load.out"
awk -v c="$((c1 - c0))" -v i="$((i1 - i0))" -v o="$((o1 - o0))" \
    -v t0="$t0" -v t1="$t1" -v r="$RATE" 'BEGIN {
    t = t1 - t0
    printf "redis, all 3 nodes: %.0f commands/s, %.0f bytes/s in, %.0f bytes/s out over %.1f s\n", c / t, i / t, o / t, t
    printf "per loaded node (a at %d events/s; in = what a publishes, out = what b and c read, each): %.0f bytes/s in, %.0f bytes/s out per reader\n", r, i / t, o / t / 2
}'
xlen=$(redis-cli -p "$port" xlen inbound-audit:stream:a)
mem=$(redis-cli -p "$port" memory usage inbound-audit:stream:a samples 0)
echo "stream of a: $xlen messages, $mem bytes in Redis"

echo "## 3. record path at $RATE events/s on a: agent stopped, then running"
agent_stop b
agent_stop c
r=0
while [ $r -lt "$ROUNDS" ]; do
    agent_stop a
    printf 'without agent: '
    "$PROBE" load "$dir/a.conf" "$RATE" "$SECONDS_LOAD"
    agent_start a
    sleep 1
    printf 'with agent:    '
    "$PROBE" load "$dir/a.conf" "$RATE" "$SECONDS_LOAD"
    r=$((r + 1))
done
grep -h -i -e error -e warning "$dir"/agent-*.log | sort | uniq -c | head
