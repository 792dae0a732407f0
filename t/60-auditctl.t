#!/bin/sh
# 60-auditctl.t - auditctl's subcommands: output for people, exit status
#
# The store is filled by forked writers with known totals (see
# t/tap/auditctl.sh) under a frozen clock, so every table, count, share
# and window position below is exact.
#
# SPDX-License-Identifier: MIT

. "${INA_TEST_SRCDIR:-$(dirname "$0")}/tap/auditctl.sh"
needs_faketime
plan 92

T1='2023-11-14 22:21:00'        # one 60 s window later
T11='2023-11-14 22:31:00'       # eleven: window 22:20 of 60,10 is gone

# show_ip_lines W N IDX C R J - the lines "show ip" prints for a monitor
# W,N whose window IDX holds C connections, R receptions, J rejections
show_ip_lines() {
    for ev in Connections:$4 Receptions:$5 Rejections:$6; do
        w=0
        while [ "$w" -le "$2" ]; do
            if [ "$w" -eq "$3" ]; then
                echo "${ev%%:*} $1/$w: ${ev#*:}"
            else
                echo "${ev%%:*} $1/$w: 0"
            fi
            w=$((w + 1))
        done
    done
}

# Version, help and usage.
ok_program "-V prints the version" 0 "inbound-audit 0.1.0" ctl -V
out=$(ctl -h)
ok "-h exits 0" test $? -eq 0
like "$out" '^  top MONITOR \[--event E\] \[--prefix /N\]' \
    "...and lists every subcommand's synopsis"
out=$(ctl 2>&1)
is 2 $? "no subcommand exits 2"
like "$out" '^auditctl: missing subcommand$' "...and says so"
out=$(ctl frobnicate 2>&1)
is 2 $? "an unknown subcommand exits 2"
like "$out" '^auditctl: unknown subcommand "frobnicate"$' "...naming it"
ok_program "show without an object exits 2" 2 \
    "auditctl: show: what to show? (config, monitors, ip)
usage: auditctl [-c CONF] [--json] SUBCOMMAND ...
       auditctl -V | -h
subcommands:
$(ctl -h | sed -n '4,$p')" ctl show

# The configuration.
ok_program "show config" 0 "file           $conf
store          $dir/store
map_size       16777216 (16.0 MiB)
flush_delay    100 ms
ipv4_prefixes  /16 /24 /32
ipv6_prefixes  /48 /64 /128
cluster        not configured

MONITOR  WIDTH  HISTORY  SPAN  CURRENT WINDOW START
60,10       60       10  11m   2023-11-14T22:20:00Z
300,12     300       12  1h5m  2023-11-14T22:20:00Z
3600,24   3600       24  1d1h  2023-11-14T22:00:00Z" at "$T0" "$AUDITCTL" -c "$conf" show config
ok_program "show monitors, one window later" 0 \
    "MONITOR  WIDTH  HISTORY  SPAN  CURRENT WINDOW START
60,10       60       10  11m   2023-11-14T22:21:00Z
300,12     300       12  1h5m  2023-11-14T22:20:00Z
3600,24   3600       24  1d1h  2023-11-14T22:00:00Z" \
    at "$T1" "$AUDITCTL" -c "$conf" show monitors
ok_program "a read-only subcommand on a store not made yet exits 1" 1 \
    "auditctl: query: store $dir/store: No such file or directory" \
    ctl query 60,10 192.0.2.1
ok_program "a missing configuration file exits 1" 1 \
    "auditctl: stats: $dir/nope.conf: No such file or directory" \
    "$AUDITCTL" -c "$dir/nope.conf" stats

# Fill the store from forked writers.
ok "4 forked writers fill the store" at "$T0" "$FILL" "$conf" 4 \
    connection,192.0.2.1,50 connection,192.0.2.77,25 \
    rejection,192.0.2.77,10 connection,198.51.100.7,15 \
    reception,198.51.100.7,30 connection,203.0.113.5,5 \
    connection,2001:db8::1,20 connection,2001:db8:1::1,10

# query.
ok_program "300 connections from 192.0.2.0/24" 0 300 \
    at "$T0" "$AUDITCTL" -c "$conf" query 60,10 192.0.2.0/24
ok_program "40 rejections from 192.0.2.77" 0 40 \
    at "$T0" "$AUDITCTL" -c "$conf" query 60,10 192.0.2.77 --event rejections
ok_program "120 receptions from 198.51.100.0/25 (a range of /32s)" 0 120 \
    at "$T0" "$AUDITCTL" -c "$conf" query "300, 12" 198.51.100.0/25 -e reception
ok_program "380 IPv4 connections in all" 0 380 \
    at "$T0" "$AUDITCTL" -c "$conf" query 3600,24 0.0.0.0/0
ok_program "120 IPv6 connections from 2001:db8::/32" 0 120 \
    at "$T0" "$AUDITCTL" -c "$conf" query 60,10 2001:db8::/32
ok_program "80 from [2001:db8::1]/48" 0 80 \
    at "$T0" "$AUDITCTL" -c "$conf" query 60,10 '[2001:db8::1]/48'
ok_program "a mapped address is the IPv4 host" 0 200 \
    at "$T0" "$AUDITCTL" -c "$conf" query 60,10 ::ffff:192.0.2.1
ok_program "windows 1..10 hold nothing yet" 0 0 \
    at "$T0" "$AUDITCTL" -c "$conf" query 60,10 192.0.2.0/24 --start 1 --end 10
ok_program "one window later the count is in window 1" 0 300 \
    at "$T1" "$AUDITCTL" -c "$conf" query 60,10 192.0.2.0/24 --start 1 --end 1
ok_program "...and windows 0..1 still sum it" 0 300 \
    at "$T1" "$AUDITCTL" -c "$conf" query 60,10 192.0.2.0/24 --end 1
ok_program "an unconfigured monitor exits 1 and lists the configured" 1 \
    'auditctl: query: monitor "61,1" is not configured (configured: 60,10 300,12 3600,24)' \
    ctl query 61,1 192.0.2.0/24
ok_program "a window past the history exits 1 with the range" 1 \
    'auditctl: query: window 11 out of range for monitor 60,10 (valid: 0..10)' \
    ctl query 60,10 192.0.2.0/24 --end 11
ok_program "start after end exits 1" 1 \
    'auditctl: query: window range 2..0 is empty: startv is greater than endv' \
    ctl query 60,10 192.0.2.0/24 --start 2
ok_program "--cluster without a cluster exits 1" 1 \
    'auditctl: query: cluster metrics are not configured' \
    ctl query 60,10 192.0.2.0/24 --cluster
ok_program "a mask finer than the finest IPv4 granularity... is /33" 2 \
    'auditctl: query: bad cidr "192.0.2.1/33": mask /33 is longer than /32
usage: auditctl [-c CONF] [--json] query MONITOR CIDR [--event E] [--start A] [--end B] [--cluster]' \
    ctl query 60,10 192.0.2.1/33

# show ip, in Momentum's form.
ok_program "show ip 192.0.2.0/24 prints every monitor, window and event" 0 \
    "$(show_ip_lines 60 10 0 300 0 40; show_ip_lines 300 12 0 300 0 40
       show_ip_lines 3600 24 0 300 0 40)" \
    at "$T0" "$AUDITCTL" -c "$conf" show ip 192.0.2.0/24
ok_program "...and one window later, 60/1 holds the minute" 0 \
    "$(show_ip_lines 60 10 1 300 0 40; show_ip_lines 300 12 0 300 0 40
       show_ip_lines 3600 24 0 300 0 40)" \
    at "$T1" "$AUDITCTL" -c "$conf" show ip 192.0.2.0/24
out=$(at "$T0" "$AUDITCTL" -c "$conf" show ip 198.51.100.7)
like "$out" '^Receptions 300/0: 120$' "show ip of a host: its receptions"
like "$out" '^Connections 3600/0: 60$' "...and its connections"

# top: ordering and shares, exact.
ok_program "top 60,10: both families, largest first, with shares" 0 \
    "IPv4 /24 blocks by connections, monitor 60,10, windows 0..0: 380 in all
#  BLOCK            COUNT  SHARE
1  192.0.2.0/24       300  78.9%
2  198.51.100.0/24     60  15.8%
3  203.0.113.0/24      20   5.3%

IPv6 /48 blocks by connections, monitor 60,10, windows 0..0: 120 in all
#  BLOCK            COUNT  SHARE
1  2001:db8::/48       80  66.7%
2  2001:db8:1::/48     40  33.3%" \
    at "$T0" "$AUDITCTL" -c "$conf" top 60,10
ok_program "top -4 -n 2 --prefix /32: the two busiest hosts" 0 \
    "IPv4 /32 blocks by connections, monitor 3600,24, windows 0..0: 380 in all
#  BLOCK          COUNT  SHARE
1  192.0.2.1/32     200  52.6%
2  192.0.2.77/32    100  26.3%" \
    at "$T0" "$AUDITCTL" -c "$conf" top 3600,24 -4 -n 2 --prefix /32
ok_program "top --prefix 8 sums the /16s into /8s, both families" 0 \
    "IPv4 /8 blocks by connections, monitor 300,12, windows 0..0: 380 in all
#  BLOCK        COUNT  SHARE
1  192.0.0.0/8    300  78.9%
2  198.0.0.0/8     60  15.8%
3  203.0.0.0/8     20   5.3%

IPv6 /8 blocks by connections, monitor 300,12, windows 0..0: 120 in all
#  BLOCK     COUNT   SHARE
1  2000::/8    120  100.0%" \
    at "$T0" "$AUDITCTL" -c "$conf" top 300,12 --prefix 8
ok_program "top --prefix /64 shows IPv6 only" 0 \
    "IPv6 /64 blocks by connections, monitor 60,10, windows 0..0: 120 in all
#  BLOCK            COUNT  SHARE
1  2001:db8::/64       80  66.7%
2  2001:db8:1::/64     40  33.3%" \
    at "$T0" "$AUDITCTL" -c "$conf" top 60,10 --prefix /64
ok_program "top --event receptions -4" 0 \
    "IPv4 /24 blocks by receptions, monitor 60,10, windows 0..0: 120 in all
#  BLOCK            COUNT   SHARE
1  198.51.100.0/24    120  100.0%" \
    at "$T0" "$AUDITCTL" -c "$conf" top 60,10 --event receptions -4
ok_program "top -6 over windows 1..10 one window later" 0 \
    "IPv6 /48 blocks by rejections, monitor 60,10, windows 1..10: 0 in all
(none)" \
    at "$T1" "$AUDITCTL" -c "$conf" top 60,10 -6 -e rejections --start 1 --end 10
ok_program "top -4 --prefix /48 is a usage error" 2 \
    "auditctl: top: --prefix /48 is longer than an IPv4 address
usage: auditctl [-c CONF] [--json] top MONITOR [--event E] [--prefix /N] [--start A] [--end B] [-n K] [-4|-6]" \
    ctl top 60,10 -4 --prefix /48

# Sessions, opened and closed by hand.
ok_program "session open" 0 \
    "opened 1 SMTP session from 198.51.100.7 (1 open now)" \
    ctl session open 198.51.100.7
ok_program "another" 0 \
    "opened 1 SMTP session from 198.51.100.7 (2 open now)" \
    ctl session open 198.51.100.7
ok_program "one to another service" 0 \
    "opened 1 Control session from 198.51.100.7 (1 open now)" \
    ctl session open --service Control 198.51.100.7
ok_program "sessions of the /24: 2 to SMTP" 0 2 ctl sessions 198.51.100.0/24
ok_program "...and 1 to Control" 0 1 \
    ctl sessions 198.51.100.0/16 --service Control
ok_program "session close" 0 \
    "closed 1 SMTP session from 198.51.100.7 (1 open now)" \
    ctl session close 198.51.100.7
ok_program "the gauge outlives auditctl (no owner to reap)" 0 1 \
    ctl sessions 198.51.100.7

# A worker's sessions: a close by hand leaves them alone; when the worker
# dies they are reaped, and stats says so.  The worker buffers them, and
# every process here may flush them: all on the store's clock (a flush
# expires what is old by its own clock).
ctl0() {
    at "$T0" "$AUDITCTL" -c "$conf" "$@"
}
at "$T0" "$FILL" -h 8 "$conf" 1 session,192.0.2.50,2 &
holder=$!
i=0
while [ "$(ctl0 sessions 192.0.2.50)" != 2 ] && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
ok_program "a worker holds 2 sessions" 0 2 ctl0 sessions 192.0.2.50
ok_program "a close by hand does not take a worker's session" 0 \
    "closed no SMTP session from 192.0.2.50: none was opened by hand (2 open now)" \
    ctl0 session close 192.0.2.50
ok_program "one opened by hand beside them" 0 \
    "opened 1 SMTP session from 192.0.2.50 (3 open now)" \
    ctl0 session open 192.0.2.50
ok_program "...is the one a close by hand takes" 0 \
    "closed 1 SMTP session from 192.0.2.50 (2 open now)" \
    ctl0 session close 192.0.2.50
wait "$holder"
is 0 $? "the worker exits without closing its sessions"
ok_program "the next writer to open the store reaps them" 0 \
    "expired 0 counters" at "$T0" "$AUDITCTL" -c "$conf" expire
ok_program "...and the gauge is back to 0" 0 0 ctl0 sessions 192.0.2.0/24

# record by hand.
ok_program "record 3 connections" 0 \
    "recorded 3 connections from 192.0.2.200" \
    at "$T0" "$AUDITCTL" -c "$conf" record connection 192.0.2.200 3
ok_program "record one rejection (N defaults to 1)" 0 \
    "recorded 1 rejection from 192.0.2.200" \
    at "$T0" "$AUDITCTL" -c "$conf" record rejections 192.0.2.200
ok_program "the /24 counts them" 0 303 \
    at "$T0" "$AUDITCTL" -c "$conf" query 60,10 192.0.2.0/24

# clear.
ok_program "clear a /24: its counters at 3 widths x (/24 + /32)" 0 \
    "cleared 203.0.113.0/24: 6 records removed" \
    at "$T0" "$AUDITCTL" -c "$conf" clear 203.0.113.0/24
ok_program "the /16 above it reads 0" 0 0 \
    at "$T0" "$AUDITCTL" -c "$conf" query 60,10 203.0.0.0/16
ok_program "the other blocks keep theirs" 0 363 \
    at "$T0" "$AUDITCTL" -c "$conf" query 60,10 0.0.0.0/0

# expire.
ok_program "expire with nothing old" 0 "expired 0 counters" \
    at "$T0" "$AUDITCTL" -c "$conf" expire
ok_program "eleven minutes on, 60,10's window goes: its 14 counters" 0 \
    "expired 14 counters" at "$T11" "$AUDITCTL" -c "$conf" expire
ok_program "...while 300,12 keeps it as window 2" 0 303 \
    at "$T11" "$AUDITCTL" -c "$conf" query 300,12 192.0.2.0/24 --start 2 --end 2

# stats.
out=$(at "$T11" "$AUDITCTL" -c "$conf" stats)
is 0 $? "stats exits 0"
like "$out" "^store +$dir/store\$" "stats names the store"
like "$out" '^format_version +4$' "...the format version"
like "$out" '^map_size +16777216 \(16\.0 MiB\)$' "...the map size"
like "$out" '^counters +28$' "...28 counters (2 widths x 14)"
like "$out" '^sessions +6$' "...6 session gauge records (2 services x 3)"
like "$out" '^degraded +no$' "...not degraded"
like "$out" '^reaped +2$' "...the 2 sessions reaped"
like "$out" '^oldest_window +2023-11-14T22:00:00Z$' "...the oldest window"
like "$out" '^newest_window +2023-11-14T22:20:00Z$' "...the newest window"
like "$out" '^readers +[0-9]+ used of [0-9]+, [0-9]+ stale cleared$' \
    "...the readers"
unlike "$out" '^cluster' "...and no cluster line without a cluster"
is "entries    300,12  3600,24  sessions
IPv4 /16        2        2         2
IPv4 /24        2        2         2
IPv4 /32        4        4         2
IPv6 /48        2        2         0
IPv6 /64        2        2         0
IPv6 /128       2        2         0" "$(printf '%s\n' "$out" | sed -n '/^entries/,$p')" \
    "...and the entries per monitor and granularity"

# clear --all.
ok_program "clear --all says how many records went" 0 \
    "cleared everything: 34 records removed" ctl clear --all
ok_program "...and nothing is left" 0 0 \
    at "$T0" "$AUDITCTL" -c "$conf" query 3600,24 0.0.0.0/0

# Usage errors: exit 2, what is wrong, the synopsis.
syn_query='usage: auditctl [-c CONF] [--json] query MONITOR CIDR [--event E] [--start A] [--end B] [--cluster]'
syn_record='usage: auditctl [-c CONF] [--json] record EVENT ADDR [N]'
syn_clear='usage: auditctl [-c CONF] [--json] clear CIDR | clear --all'
ok_program "query without arguments" 2 \
    "auditctl: query: missing MONITOR and CIDR
$syn_query" ctl query
ok_program "query with a bad monitor" 2 \
    "auditctl: query: bad monitor \"sixty\": unexpected 's' where window width should be
$syn_query" ctl query sixty 192.0.2.1
ok_program "query with a bad event" 2 \
    "auditctl: query: event \"bounces\": not an event (connections, receptions, rejections)
$syn_query" ctl query 60,10 192.0.2.1 --event bounces
ok_program "query with a bad window" 2 \
    "auditctl: query: --start \"-1\": not a window index (0, 1, ...)
$syn_query" ctl query 60,10 192.0.2.1 --start -1
ok_program "query with a bare mask" 2 \
    "auditctl: query: \"/24\": a bare mask needs an address here
$syn_query" ctl query 60,10 /24
ok_program "query with an unknown option" 2 \
    "auditctl: query: unknown option --frob
$syn_query" ctl query --frob 60,10 192.0.2.1
ok_program "query with an option missing its value" 2 \
    "auditctl: query: option --event needs a value
$syn_query" ctl query 60,10 192.0.2.1 --event
ok_program "record of a block" 2 \
    "auditctl: record: \"192.0.2.0/24\": an address is needed here, not a block
$syn_record" ctl record connection 192.0.2.0/24
ok_program "record of 0 events" 2 \
    "auditctl: record: N \"0\": not a count of 1 or more
$syn_record" ctl record connection 192.0.2.1 0
ok_program "clear with a CIDR and --all" 2 \
    "auditctl: clear: give either a CIDR or --all, not both
$syn_clear" ctl clear --all 192.0.2.0/24
ok_program "clear without either" 2 \
    "auditctl: clear: missing CIDR (or --all for everything)
$syn_clear" ctl clear
ok_program "session with neither open nor close" 2 \
    "auditctl: session: \"shut\": expected open or close
usage: auditctl [-c CONF] [--json] session open|close ADDR [--service S]" \
    ctl session shut 192.0.2.1
ok_program "stats with an argument" 2 \
    "auditctl: stats: unexpected argument \"now\"
usage: auditctl [-c CONF] [--json] stats" ctl stats now
ok_program "top -n 0" 2 \
    "auditctl: top: -n \"0\": not a count from 1 to 100000
usage: auditctl [-c CONF] [--json] top MONITOR [--event E] [--prefix /N] [--start A] [--end B] [-n K] [-4|-6]" \
    ctl top 60,10 -n 0
ok_program "a subcommand's -h prints its synopsis and exits 0" 0 \
    "usage: auditctl [-c CONF] [--json] expire" ctl expire -h
