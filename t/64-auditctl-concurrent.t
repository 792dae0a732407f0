#!/bin/sh
# 64-auditctl-concurrent.t - auditctl while 8 workers write
#
# Read-only subcommands run in a loop while 8 forked writers record, and
# auditctl itself records beside them: every run must succeed, counts
# must only grow, every dump must be one consistent snapshot (a /24
# always equals the sum of its /32s), and the totals at the end must be
# exact.  Then a reader stalled in the middle of a dump must not hold the
# writers up.  The clock is the real one; windows 0..10 of 60,10 hold
# everything recorded within the test's few seconds.
#
# SPDX-License-Identifier: MIT

. "${INA_TEST_SRCDIR:-$(dirname "$0")}/tap/auditctl.sh"
command -v jq >/dev/null 2>&1 || skip_all "jq is needed (Debian package jq)"
plan 20

N=5000          # events of each kind per writer
PAUSE=400       # microseconds each writer waits between rounds
RECORDS=40      # events recorded by auditctl during the writes

# consistent FILE - every window of the dump in FILE has its
# 192.0.2.0/24 equal to its one host 192.0.2.1 and its 192.0.0.0/16
consistent() {
    jq -se '[.[] | select(.type == "counter")]
        | group_by([.width, .window])
        | map([(map(select(.prefix == "192.0.2.1/32"))[0].connections // 0),
               (map(select(.prefix == "192.0.2.0/24"))[0].connections // 0),
               (map(select(.prefix == "192.0.0.0/16"))[0].connections // 0)]
              | .[0] == .[1] and .[1] == .[2])
        | all' "$1" >/dev/null
}

ok "the store exists before the writers start" quiet ctl record connection \
    203.0.113.1
"$FILL" -d $PAUSE "$conf" 8 connection,192.0.2.1,$N rejection,198.51.100.9,$N \
    connection,2001:db8::9,$N &
fillpid=$!

runs=0
fails=0
down=0
inconsistent=0
recorded=1
last=0
while kill -0 "$fillpid" 2>/dev/null; do
    runs=$((runs + 1))
    n=$(ctl query 60,10 192.0.2.0/24 --end 10) || fails=$((fails + 1))
    case $n in
    '' | *[!0-9]*) fails=$((fails + 1)) ;;
    *)
        [ "$n" -lt "$last" ] && down=$((down + 1))
        last=$n
        ;;
    esac
    ctl top 60,10 --end 10 -n 3 >/dev/null || fails=$((fails + 1))
    ctl stats >/dev/null || fails=$((fails + 1))
    ctl show ip 198.51.100.9 >/dev/null || fails=$((fails + 1))
    ctl --json sessions 192.0.2.0/24 >/dev/null || fails=$((fails + 1))
    if ctl dump >"$dir/dump"; then
        consistent "$dir/dump" || inconsistent=$((inconsistent + 1))
    else
        fails=$((fails + 1))
    fi
    if [ "$recorded" -lt "$RECORDS" ]; then
        ctl record connection 203.0.113.1 >/dev/null || fails=$((fails + 1))
        recorded=$((recorded + 1))
    fi
done
wait "$fillpid"
is 0 $? "8 writers recorded without an error"
ok "the readers ran during the writes ($runs rounds)" test "$runs" -ge 2
is 0 "$fails" "every auditctl run during the writes succeeded"
is 0 "$down" "the count never went down"
is 0 "$inconsistent" "every dump was one consistent snapshot"
while [ "$recorded" -lt "$RECORDS" ]; do
    ctl record connection 203.0.113.1 >/dev/null || fails=$((fails + 1))
    recorded=$((recorded + 1))
done

is $((8 * N)) "$(ctl query 60,10 192.0.2.0/24 --end 10)" \
    "exact connections of 192.0.2.0/24"
is $((8 * N)) "$(ctl query 300,12 198.51.100.9 -e rejections --end 12)" \
    "exact rejections of 198.51.100.9"
is $((8 * N)) "$(ctl query 3600,24 2001:db8::/32 --end 24)" \
    "exact IPv6 connections"
is "$RECORDS" "$(ctl query 60,10 203.0.113.0/24 --end 10)" \
    "exact connections recorded by auditctl beside the writers"
is "$((8 * N + RECORDS))" \
    "$(ctl --json top 60,10 -4 --end 10 | jq .families[0].total)" \
    "top's IPv4 total"

# A dump whose reader stalls must not hold the writers up nor pin the
# store: an LMDB snapshot held that long keeps freed pages from reuse,
# and 8000 writes of a transaction each (flush_delay = 0) would then fill
# this 16 MiB map.  Enough hosts make the dump overflow the pipe, so
# auditctl blocks on its output.
write_conf "$dir/nodelay.conf" "$dir/store" "flush_delay = 0"
specs=
i=1
while [ $i -le 250 ]; do
    specs="$specs connection,10.0.$((i / 200)).$((i % 200 + 1)),1"
    i=$((i + 1))
done
# shellcheck disable=SC2086
ok "250 hosts more" "$FILL" "$conf" 1 $specs
mkfifo "$dir/fifo"
# The holder keeps the fifo open for reading, so the dump's open does not
# block; it never reads, and is killed below (a slow run, valgrind's,
# must not outlive it and meet a SIGPIPE).
sleep 600 <"$dir/fifo" &
holder=$!
ctl dump >"$dir/fifo" &
dumper=$!
sleep 1
ok "the dump is stalled on a full pipe" kill -0 "$dumper"
ok "8 writers record 1000 events each while it is stalled" \
    "$FILL" "$dir/nodelay.conf" 8 \
    connection,192.0.2.1,1000
ok "...and finish while it is still stalled" kill -0 "$dumper"
cat "$dir/fifo" >"$dir/dump" &
drainer=$!
wait "$dumper"
is 0 $? "the stalled dump then completes"
# The dump's last bytes may still be in the pipe when auditctl exits:
# the file is whole only once cat has seen the end of the fifo.
wait "$drainer"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
ok "...with an end record" grep -q '^{"type":"end",' "$dir/dump"
is $((8 * N + 8000)) "$(ctl query 60,10 192.0.2.0/24 --end 10)" \
    "every one of the 8000 events is counted"
out=$(ctl stats)
like "$out" '^degraded +no$' "the store is not degraded"
like "$out" '^dropped +0$' "...and dropped nothing"
