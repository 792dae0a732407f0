# auditctl.sh - set-up shared by the auditctl tests (t/6x-auditctl*.t)
#
# Sourced after libtap.sh's directory is known.  Finds auditctl and the
# fill helper, makes a private directory (removed at exit) holding a
# configuration whose store lives in it, and defines:
#
#   write_conf FILE STORE [OPTION]
#                           write the test configuration for STORE, with
#                           one more option line if given
#   ctl ARGS...             auditctl -c $conf ARGS...
#   at TIME CMD...          CMD with the clock frozen at TIME (UTC), by
#                           libfaketime; needs_faketime skips without it
#   fill_known [TIME]       fill the store with the known pattern below,
#                           at TIME if given
#
# The known pattern: 4 forked writers each record, one event a call,
#   connection  192.0.2.1      50   -> 200
#   connection  192.0.2.77     25   -> 100
#   rejection   192.0.2.77     10   ->  40
#   connection  198.51.100.7   15   ->  60
#   reception   198.51.100.7   30   -> 120
#   connection  203.0.113.5     5   ->  20
#   connection  2001:db8::1    20   ->  80
#   connection  2001:db8:1::1  10   ->  40
# so IPv4 connections are 380 (192.0.2.0/24 300, 198.51.100.0/24 60,
# 203.0.113.0/24 20) and IPv6 connections 120 (2001:db8::/48 80,
# 2001:db8:1::/48 40).
#
# SPDX-License-Identifier: MIT

: "${INA_TEST_SRCDIR:=$(cd "$(dirname "$0")" && pwd)}"
: "${INA_TEST_BUILDDIR:=$INA_TEST_SRCDIR}"
. "$INA_TEST_SRCDIR/tap/libtap.sh"

AUDITCTL=${AUDITCTL:-$INA_TEST_BUILDDIR/../tools/auditctl}
FILL=$INA_TEST_BUILDDIR/fill
[ -x "$AUDITCTL" ] || bail "$AUDITCTL is missing: run make first"
[ -x "$FILL" ] || bail "$FILL is missing: run make prove or make check"

TZ=UTC
LC_ALL=C
export TZ LC_ALL
unset INBOUND_AUDIT_CONF

# The frozen clock of the tests: 2023-11-14 22:20:00 UTC, 1700000400.
T0='2023-11-14 22:20:00'

write_conf() {
    cat >"$1" <<EOF
inbound_audit {
    store = "$2"
    map_size = "16M"
    monitors = {"60,10", "300,12", "3600,24"}
    ipv4_prefixes = {32, 24, 16}
    ipv6_prefixes = {128, 64, 48}
    ${3:-}
}
EOF
}

dir=$(mktemp -d "${TMPDIR:-/tmp}/inaudit-ctl.XXXXXX") || bail "mktemp failed"
tap_cleanup 'rm -rf "$dir"'
conf=$dir/inbound_audit.conf
write_conf "$conf" "$dir/store"

ctl() {
    "$AUDITCTL" -c "$conf" "$@"
}

# libfaketime is preloaded directly rather than through faketime(1), whose
# wrapper makes one more pid-named semaphore; the library itself makes
# pid-named objects too, which at() clears for dead pids first.
FAKETIME_LIB=$(ls /usr/lib/*/faketime/libfaketime.so.1 \
    /usr/lib/faketime/libfaketime.so.1 2>/dev/null | head -n 1)

needs_faketime() {
    [ -n "$FAKETIME_LIB" ] \
        || skip_all "libfaketime is needed (Debian package faketime)"
}

# at TIME CMD... - CMD with the clock frozen at TIME ("YYYY-MM-DD hh:mm:ss")
#
# First clears what libfaketime left behind for dead pids (a recycled pid
# would meet it: tap/faketime-sweep.sh).
at() {
    _at_time=$1
    shift
    sh "$INA_TEST_SRCDIR/tap/faketime-sweep.sh"
    LD_PRELOAD="$FAKETIME_LIB${LD_PRELOAD:+:$LD_PRELOAD}" \
        FAKETIME="$_at_time" "$@"
}

fill_known() {
    if [ $# -gt 0 ]; then
        set -- at "$1" "$FILL"
    else
        set -- "$FILL"
    fi
    "$@" "$conf" 4 connection,192.0.2.1,50 connection,192.0.2.77,25 \
        rejection,192.0.2.77,10 connection,198.51.100.7,15 \
        reception,198.51.100.7,30 connection,203.0.113.5,5 \
        connection,2001:db8::1,20 connection,2001:db8:1::1,10
}

# quiet CMD... - CMD with its standard output thrown away
quiet() {
    "$@" >/dev/null
}
