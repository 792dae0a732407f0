#!/bin/sh
# 61-auditctl-json.t - auditctl --json, parsed by jq and checked field by
# field against the known totals of t/tap/auditctl.sh
#
# SPDX-License-Identifier: MIT

. "${INA_TEST_SRCDIR:-$(dirname "$0")}/tap/auditctl.sh"
needs_faketime
command -v jq >/dev/null 2>&1 || skip_all "jq is needed (Debian package jq)"
plan 62

# j FILTER - apply a jq filter to $doc, compact output
j() {
    printf '%s\n' "$doc" | jq -c "$1"
}

# doc_of ARGS... - run auditctl at T0, keep stdout in $doc; ok if it
# exits 0 and prints exactly one JSON document
doc_of() {
    doc=$(at "$T0" "$AUDITCTL" -c "$conf" "$@")
    _st=$?
    [ "$_st" -eq 0 ] && [ "$(printf '%s\n' "$doc" | jq -s length)" = 1 ]
}

ok "4 forked writers fill the store" fill_known "$T0"

# show config, show monitors.
ok "show config --json is one JSON document" doc_of --json show config
is "\"$conf\"" "$(j .file)" "file"
is "\"$dir/store\"" "$(j .store)" "store"
is 16777216 "$(j .map_size)" "map_size"
is 100 "$(j .flush_delay)" "flush_delay, the default"
is '[16,24,32]' "$(j .ipv4_prefixes)" "ipv4_prefixes, coarsest first"
is '[48,64,128]' "$(j .ipv6_prefixes)" "ipv6_prefixes"
is null "$(j .cluster)" "cluster is null without a cluster section"
is '{"monitor":"60,10","width":60,"history":10,"span":660,"current_window_start":1700000400,"current_window_start_utc":"2023-11-14T22:20:00Z"}' \
    "$(j '.monitors[0]')" "the first monitor, every field"
ok "show monitors --json" doc_of show monitors --json
is '["60,10","300,12","3600,24"]' "$(j '[.monitors[].monitor]')" \
    "monitor names, in configuration order"
is '[660,3900,90000]' "$(j '[.monitors[].span]')" "spans W*(N+1)"
is '[1700000400,1700000400,1699999200]' \
    "$(j '[.monitors[].current_window_start]')" "current window starts"

# query, sessions.
ok "query --json" doc_of --json query "300, 12" 192.0.2.77 -e rejection \
    --end 3
is '{"monitor":"300,12","cidr":"192.0.2.77/32","event":"rejections","start":0,"end":3,"cluster":false,"count":40}' \
    "$(j .)" "query: every field, the monitor canonical"
ok "query with --json after the subcommand" doc_of query 60,10 \
    2001:db8::/32 --json
is 120 "$(j .count)" "...counts the same"
ok "session open --json" doc_of -j session open 192.0.2.1
is '{"action":"open","address":"192.0.2.1","service":"SMTP","changed":1,"sessions":1}' \
    "$(j .)" "session open: every field"
ok "sessions --json" doc_of -j sessions 192.0.2.0/24
is '{"cidr":"192.0.2.0/24","service":"SMTP","count":1}' "$(j .)" \
    "sessions: every field"

# show ip.
ok "show ip --json" doc_of --json show ip 192.0.2.0/24
is '"192.0.2.0/24"' "$(j .cidr)" "the block"
is '[11,13,25]' "$(j '[.monitors[].windows | length]')" \
    "every window of every monitor, current plus history"
is '{"index":0,"start":1700000400,"connections":300,"receptions":0,"rejections":40}' \
    "$(j '.monitors[0].windows[0]')" "window 0 of 60,10, every field"
is '{"index":1,"start":1700000340,"connections":0,"receptions":0,"rejections":0}' \
    "$(j '.monitors[0].windows[1]')" "window 1 starts a minute earlier"
is '[300,300,300]' "$(j '[.monitors[] | [.windows[].connections] | add]')" \
    "each monitor's windows sum to 300 connections"
is '{"monitor":"3600,24","width":3600,"history":24}' \
    "$(j '.monitors[2] | del(.windows)')" "the monitor fields"

# top: ordering and totals, exact.
ok "top --json" doc_of --json top 60,10
is '{"monitor":"60,10","event":"connections","start":0,"end":0}' \
    "$(j 'del(.families)')" "top: the request"
is '[[4,24,380],[6,48,120]]' "$(j '[.families[] | [.family, .prefix, .total]]')" \
    "both families, their masks and totals"
is '[{"rank":1,"cidr":"192.0.2.0/24","count":300},{"rank":2,"cidr":"198.51.100.0/24","count":60},{"rank":3,"cidr":"203.0.113.0/24","count":20}]' \
    "$(j '.families[0].blocks')" "IPv4 blocks largest first"
is '["2001:db8::/48",80,"2001:db8:1::/48",40]' \
    "$(j '[.families[1].blocks[] | .cidr, .count]')" "IPv6 blocks largest first"
is '[true,true]' "$(j '[.families[] | ([.blocks[].count] | add) == .total]')" \
    "the blocks of each family add up to its total"
ok "top -6 -n 1 --prefix /32 --json" doc_of top 60,10 -6 -n 1 --prefix /32 \
    --json
is '[{"family":6,"prefix":32,"total":120,"blocks":[{"rank":1,"cidr":"2001:db8::/32","count":120}]}]' \
    "$(j .families)" "one family, one block"

# stats.
ok "stats --json" doc_of --json stats
is '["store","format_version","map_size","map_used","map_use_percent","file_size","page_size","counters","sessions","owners","readers_max","readers_used","readers_stale","degraded","reaped","dropped","oldest_window","newest_window","entries","session_entries","cluster"]' \
    "$(j keys_unsorted)" "the stable keys, in order"
is '[4,16777216,48,3,0,0,0,1699999200,1700000400,null]' \
    "$(j '[.format_version, .map_size, .counters, .sessions, .owners, .degraded, .dropped, .oldest_window, .newest_window, .cluster]')" \
    "format, map size, counters, sessions, owners, degraded, dropped, windows, cluster"
is true "$(j '.map_used > 0 and .map_used <= .map_size and .file_size > 0')" \
    "map use and file size are plausible"
is true "$(j '.readers_max > 0 and .readers_used >= 0 and .readers_stale >= 0')" \
    "reader counts are numbers"
is '{"width":60,"monitors":["60,10"],"family":4,"prefix":16,"count":3}' \
    "$(j '.entries[0]')" "the first entry: width, monitors, granularity, count"
is 18 "$(j '.entries | length')" "3 widths x 6 granularities"
is 48 "$(j '[.entries[].count] | add')" "entries add up to the counters"
is '[{"family":4,"prefix":16,"count":1},{"family":4,"prefix":24,"count":1},{"family":4,"prefix":32,"count":1}]' \
    "$(j .session_entries)" "session gauge entries per granularity"

# Mutating subcommands say what they changed.
ok "record --json" doc_of --json record reception 2001:db8::5 7
is '{"event":"receptions","address":"2001:db8::5","count":7}' "$(j .)" \
    "record: every field"
ok "clear --json" doc_of --json clear 2001:db8::/48
is '{"cidr":"2001:db8::/48","removed":12}' "$(j .)" \
    "clear: the block and its 12 records (3 widths x 2 hosts, a /64, a /48)"
ok "expire --json" doc_of --json expire
is '{"removed":0}' "$(j .)" "expire: nothing old"
ok "clear --all --json" doc_of --json clear --all
is '{"cidr":null,"removed":42}' "$(j .)" "clear --all: cidr null, 39 counters and 3 gauges"

# Errors stay text on stderr, with nothing on stdout.
out=$(at "$T0" "$AUDITCTL" -c "$conf" --json query 61,1 192.0.2.1 2>/dev/null)
is 1 $? "an error under --json exits 1"
is "" "$out" "...and prints no JSON"

# A cluster section shows up; with no sync agent run yet, its sync lag is
# unknown rather than made up.
cat >"$dir/cluster.conf" <<EOF
inbound_audit {
    store = "$dir/cstore"
    monitors = {"60,10"}
    cluster {
        redis = "127.0.0.1:6379"
        node = "mx1"
    }
}
EOF
ok "record into the cluster node's store" quiet "$AUDITCTL" -c "$dir/cluster.conf" \
    record connection 192.0.2.1
doc=$("$AUDITCTL" -c "$dir/cluster.conf" --json show config)
is '{"redis":"127.0.0.1:6379","node":"mx1","interval":100,"password_file":null}' \
    "$(j .cluster)" "show config: the cluster section"
doc=$("$AUDITCTL" -c "$dir/cluster.conf" --json stats)
is '{"redis":"127.0.0.1:6379","node":"mx1","interval":100,"sync_lag":null,"peers":[]}' \
    "$(j '.cluster | del(.self)')" \
    "stats: the cluster, sync lag null and no other node yet"
is '{"seq":0,"sent":0,"sent_at":null,"outbox":0}' \
    "$(j '.cluster.self | {seq, sent, sent_at, outbox}')" \
    "...and nothing published (no agent ran)"
out=$("$AUDITCTL" -c "$dir/cluster.conf" stats)
like "$out" '^cluster +redis 127\.0\.0\.1:6379, node mx1, interval 100 ms' \
    "stats for people shows the cluster"
like "$out" '^sync_lag +unknown \(no other node heard of' \
    "...and says the lag is unknown"
