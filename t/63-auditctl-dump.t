#!/bin/sh
# 63-auditctl-dump.t - auditctl dump and load: the store as JSON lines
# and back, exactly; input that does not parse loads nothing
#
# SPDX-License-Identifier: MIT

. "${INA_TEST_SRCDIR:-$(dirname "$0")}/tap/auditctl.sh"
needs_faketime
command -v jq >/dev/null 2>&1 || skip_all "jq is needed (Debian package jq)"
plan 43

# A second configuration, for stores to load into.
conf2=$dir/copy.conf

# ctl_at CONF ARGS... - auditctl on CONF at T0
ctl_at() {
    _c=$1
    shift
    at "$T0" "$AUDITCTL" -c "$_c" "$@"
}

# load_into NAME FILE - load FILE into a new store NAME; prints auditctl's
# output and exits with its status
load_into() {
    write_conf "$conf2" "$dir/$1"
    ctl_at "$conf2" load "$2"
}

ok "4 forked writers fill the store" fill_known "$T0"
ok "two SMTP sessions by hand" quiet ctl session open 198.51.100.7
ok "...the second" quiet ctl session open 198.51.100.7
ok "...and one to Control" quiet ctl session open -s Control 2001:db8::1

# The dump.
ctl_at "$conf" dump >"$dir/d1"
is 0 $? "dump exits 0"
is 56 "$(wc -l <"$dir/d1" | tr -d ' ')" \
    "56 lines: header, 48 counters, 6 gauges, end"
is 56 "$(jq -s length "$dir/d1")" "every line is one JSON value"
is '{"type":"header","format":1,"version":"inbound-audit 0.1.0"}' \
    "$(sed -n 1p "$dir/d1")" "the header line"
is '{"type":"counter","width":60,"window":28333340,"prefix":"192.0.0.0/16","connections":300,"receptions":0,"rejections":40}' \
    "$(sed -n 2p "$dir/d1")" "the first counter, in key order"
like "$(cat "$dir/d1")" '^\{"type":"counter","width":3600,"window":472222,"prefix":"2001:db8:1::1/128","connections":40,"receptions":0,"rejections":0\}$' \
    "an IPv6 host counter of the hour"
like "$(cat "$dir/d1")" '^\{"type":"session","service":"SMTP","prefix":"198\.51\.100\.7/32","count":2\}$' \
    "a session gauge"
is '{"type":"end","counters":48,"sessions":6}' "$(sed -n '$p' "$dir/d1")" \
    "the end line counts the records"

# Load into an empty store: the same store.
ok_program "load into an empty store" 0 \
    "loaded 48 counters and 6 session gauges from $dir/d1" \
    load_into s2 "$dir/d1"
ctl_at "$conf2" dump >"$dir/d2"
ok "a dump of the copy is identical, byte for byte" cmp -s "$dir/d1" "$dir/d2"
same=0
for block in 192.0.2.0/24 192.0.2.77 198.51.100.0/25 0.0.0.0/0 \
    2001:db8::/32 2001:db8:1::1; do
    a=$(ctl_at "$conf" show ip "$block")
    b=$(ctl_at "$conf2" show ip "$block")
    [ -n "$a" ] && [ "$a" = "$b" ] && same=$((same + 1))
done
is 6 "$same" "show ip answers the same for 6 blocks (every monitor, window, event)"
is "$(ctl_at "$conf" top 3600,24 -e rejections --end 24)" \
    "$(ctl_at "$conf2" top 3600,24 -e rejections --end 24)" "top answers the same"
is 2 "$(ctl_at "$conf2" sessions 198.51.100.0/24)" "the SMTP gauge came along"
is 1 "$(ctl_at "$conf2" sessions -s Control 2001:db8::/48)" "...and Control's"

# The pipe of the issue: dump | load.
write_conf "$dir/pipe.conf" "$dir/s3"
ctl_at "$conf" dump | ctl_at "$dir/pipe.conf" load >"$dir/out"
is 0 $? "dump | load exits 0"
is "loaded 48 counters and 6 session gauges from (stdin)" "$(cat "$dir/out")" \
    "...and says what it loaded"
is "$(ctl_at "$conf" query 60,10 0.0.0.0/0)" \
    "$(ctl_at "$dir/pipe.conf" query 60,10 0.0.0.0/0)" "...the same IPv4 total"

# A store that is not empty is refused, unless --merge.
ok_program "load into a store that is not empty exits 1" 1 \
    "auditctl: load: store $dir/s2 is not empty (48 counters, 6 session gauges): clear it with \"auditctl clear --all\", or add to it with --merge" \
    ctl_at "$conf2" load "$dir/d1"
ok_program "load --merge adds" 0 \
    "loaded 48 counters and 6 session gauges from $dir/d1" \
    ctl_at "$conf2" load --merge "$dir/d1"
is 600 "$(ctl_at "$conf2" query 60,10 192.0.2.0/24)" "...doubling the counts"

# Bad input: which line and why, and nothing loaded.
bad() {
    # bad DESC MESSAGE - load $dir/bad into a new store; exit 1 with
    # MESSAGE, and the store was never even made
    rm -rf "$dir/sb"
    ok_program "$1" 1 "auditctl: load: $dir/bad$2" load_into sb "$dir/bad"
}
line2=$(sed -n 2p "$dir/d1")
head -n 10 "$dir/d1" >"$dir/bad"
bad "a cut dump" ":10: input ends without the end record (a cut dump?)"
ok "...loads nothing" test ! -e "$dir/sb/data.mdb"
sed '3s/.*/{"type":"counter",/' "$dir/d1" >"$dir/bad"
out=$(load_into sb "$dir/bad" 2>&1)
like "$out" "^auditctl: load: $dir/bad:3: not JSON: " "a line that is not JSON"
ok "...loads nothing" test ! -e "$dir/sb/data.mdb"
sed '2s/}$/,"extra":1}/' "$dir/d1" >"$dir/bad"
bad "an unknown field" ':2: unknown field "extra"'
sed '2s/"connections":300/"connections":-1/' "$dir/d1" >"$dir/bad"
bad "a negative count" ':2: field "connections" is out of range (0..9223372036854775807)'
sed '2s/"connections":300/"connections":1.5/' "$dir/d1" >"$dir/bad"
bad "a count that is not an integer" ':2: field "connections" is not an integer'
sed '2s/"connections":300,//' "$dir/d1" >"$dir/bad"
bad "a missing field" ':2: missing field "connections"'
sed '2s#192.0.0.0/16#192.0.2.1/16#' "$dir/d1" >"$dir/bad"
bad "host bits under the mask" ':2: prefix "192.0.2.1/16" is not in canonical form ("192.0.0.0/16")'
sed '2s#192.0.0.0/16#300.0.0.0/16#' "$dir/d1" >"$dir/bad"
out=$(load_into sb "$dir/bad" 2>&1)
like "$out" "^auditctl: load: $dir/bad:2: bad cidr \"300\\.0\\.0\\.0/16\": " \
    "a prefix that is no block"
sed -e "3a\\
$line2" -e '$s/"counters":48/"counters":49/' "$dir/d1" >"$dir/bad"
bad "a record twice (the end record counting it)" \
    ":4: the same record as line 2"
sed '2s/"counter"/"gauge"/' "$dir/d1" >"$dir/bad"
bad "an unknown type" ':2: unknown type "gauge" (header, counter, session, end)'
sed 1d "$dir/d1" >"$dir/bad"
bad "no header" ':1: the first line is not the header ({"type":"header",...}); is this a dump?'
sed '1s/"format":1/"format":2/' "$dir/d1" >"$dir/bad"
bad "another dump format" ':1: dump format 2, this auditctl reads format 1'
sed '$s/"counters":48/"counters":47/' "$dir/d1" >"$dir/bad"
bad "an end record that does not count right" \
    ':56: the end record counts 47 counters and 6 sessions, the dump has 48 and 6'
{ cat "$dir/d1"; echo "$line2"; } >"$dir/bad"
bad "a line after the end" ":57: a line after the end record"
: >"$dir/bad"
bad "an empty file" ": empty input, not a dump"
ok "...and none of them made a store" test ! -e "$dir/sb/data.mdb"
ok_program "a file that is not there" 1 \
    "auditctl: load: $dir/nope: No such file or directory" \
    load_into sb "$dir/nope"
