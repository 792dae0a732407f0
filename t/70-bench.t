#!/bin/sh
# 70-bench.t - inaudit-bench --quick runs and prints every figure
#
# A smoke test of the benchmark: a run of a few seconds must exit 0, check
# its counts, and print every table row and target line.  It never
# asserts a timing: the figures of a quick run on a loaded CI machine mean
# nothing.  The Redis rows may say the peer was skipped when redis-server
# is not installed.
#
# SPDX-License-Identifier: MIT

. "${INA_TEST_SRCDIR:-$(dirname "$0")}/tap/libtap.sh"

bench="${INA_TEST_BUILDDIR:-$(dirname "$0")}/../tools/inaudit-bench"
[ -x "$bench" ] || skip_all "tools/inaudit-bench is not built"

plan 69

tmp=$(mktemp -d "${TMPDIR:-/tmp}/70-bench.XXXXXX") || bail "mktemp failed"
tap_cleanup 'rm -rf "$tmp"'

TMPDIR=$tmp "$bench" --quick >"$tmp/out" 2>"$tmp/err"
status=$?
is 0 "$status" "inaudit-bench --quick exits 0"
[ "$status" -eq 0 ] || diag "stderr:" "$(cat "$tmp/err")"
out=$(cat "$tmp/out")

# Each section, and the three systems in each throughput table.
like "$out" '^inaudit-bench: inbound-audit [0-9.]+, 8 workers' \
    "the header names the version and the workers"
for wl in realistic adversarial policy; do
    section=$(printf '%s\n' "$out" | sed -n "/^== $wl:/,/^==/p")
    like "$section" '^  inbound-audit +[0-9]+ +[0-9.]+ +[0-9]+ ' \
        "$wl: an inbound-audit row with events, seconds and a rate"
    like "$section" '^  redis +([0-9]+ +[0-9.]+ +[0-9]+ |.*(skipped|not measured|failed))' \
        "$wl: a Redis row, measured or skipped with a reason"
    like "$section" '^  floor +[0-9]+ +[0-9.]+ +[0-9]+ ' \
        "$wl: a floor row"
    like "$section" '^  counts: exact ' "$wl: the store's counts are exact"
    like "$section" '^  inbound-audit / redis: .* floor / inbound-audit: ' \
        "$wl: the ratios line"
    like "$section" "^  inbound-audit's store: its file read into the page cache before the run \\([0-9.]+ s\\),\$" \
        "$wl: the store was read into the page cache first, and says so"
done

# The adversarial mix is measured on a new store too, checked as well.
section=$(printf '%s\n' "$out" | sed -n "/^== adversarial:/,/^==/p")
like "$section" '^  cold store +[0-9]+ +[0-9.]+ +[0-9]+ ' \
    "adversarial: a cold store row"
like "$section" '^  cold store counts: exact ' \
    "adversarial: the cold store's counts are exact"
like "$section" '^  cold store / redis: .* floor / cold store: ' \
    "adversarial: the cold store's ratios"

# The query figures.
like "$out" '^== queries: ' "a query section"
like "$out" '^  C    ina_query\(connection, "60,10", /32, 0, 0\) +[0-9.]+ [nmu]s +[0-9.]+ [nmu]s' \
    "the C point query with p50 and p99"
like "$out" '^  Lua  msys.audit.connections\("60,10", addr\) +[0-9.]+ [nmu]s +[0-9.]+ [nmu]s' \
    "the Lua point query with p50 and p99"
like "$out" '^  Lua  the same call in a loop inside Lua' "the Lua loop's mean"
like "$out" '^  C    ina_query 10.20.0.0/16 summing 256 /24 counters +[0-9.]+ [nmu]s' \
    "the /16 query over /24 counters"

# The scale figures (--quick measures 10k addresses only).
like "$out" '^== scale: ' "a scale section"
like "$out" '^ +10k +[0-9]+ +[0-9.]+ [nmu]s ' "the 10k row"

# Every target line, with its verdict.
like "$out" '^== targets ' "a targets section"
for t in 'realistic events/s' 'adversarial events/s' \
    'realistic: inbound-audit / Redis' 'adversarial: inbound-audit / Redis' \
    'policy: inbound-audit / Redis' 'realistic: floor / inbound-audit' \
    'adversarial: floor / inbound-audit' 'policy: floor / inbound-audit' \
    'point query from C, p50' 'point query from Lua, p50' \
    '/16 query over /24 counters, p50' \
    'growth 10k -> .*, record p50' 'growth 10k -> .*, query p50'; do
    like "$out" "^  $t .*(met|NOT MET|n/a)\$" "target line: $t"
done

# The visibility probes need a run long enough for a flush or two, and
# for the reader, one process among nine on two CPUs, to be woken while
# worker 0 still records: worker 0 records a probe only once the reader
# saw the last one.  At 20,000 events a worker the full-speed run lasted
# 0.1-0.15 s here once records got faster (0633c2e), and one run in CI
# ended before the reader saw its first probe; at 100,000 it lasts about
# 0.4 s.
TMPDIR=$tmp "$bench" -w realistic -n 100000 --no-redis -F 20 >"$tmp/vis" 2>"$tmp/err"
is 0 "$?" "a short realistic run exits 0"
like "$(cat "$tmp/vis")" '^  visibility at half speed \([0-9]+ events/s\)' \
    "it measures visibility with the workers at half speed"
like "$(cat "$tmp/vis")" '^    p50 [0-9.]+ [nmu]?s, p99 [0-9.]+ [nmu]?s, at most [0-9.]+ [nmu]?s \([0-9]+ probes; flush_delay 20 ms\);$' \
    "...as percentiles of probes seen by a reader process, with -F's delay"
# A record that has returned is in the shared pending table or in the
# tree, and a query reads both: the reader's first query after it must
# see it, whatever the flushes are doing.
probes=$(sed -n 's/^    p50 .* (\([0-9]*\) probes; .*/\1/p' "$tmp/vis" | tr '\n' ' ')
first=$(sed -n 's/^    \([0-9]*\) of them at its first query after the record returned$/\1/p' "$tmp/vis" | tr '\n' ' ')
like "$probes" '^[1-9][0-9]* [1-9][0-9]* $' \
    "both runs report their probes ($probes)"
is "$first" "$probes" \
    "every probe was seen by the reader's first query after its record"
# The paced run times session calls, buffered like the records.
like "$(cat "$tmp/vis")" '^  sessions at half speed \([1-9][0-9]*, one a millisecond by a process of its own; each call$' \
    "the paced run times session calls"
like "$(cat "$tmp/vis")" '^    buffered in the shared tables\): open p50 [0-9.]+ [nmu]?s, p99 [0-9.]+ [nmu]?s, at most [0-9.]+ [nmu]?s;$' \
    "...opens as percentiles"
like "$(cat "$tmp/vis")" '^    close p50 [0-9.]+ [nmu]?s, p99 [0-9.]+ [nmu]?s, at most [0-9.]+ [nmu]?s$' \
    "...and closes"

# --json puts the figures on stdout and the tables on stderr.
TMPDIR=$tmp "$bench" --quick --json -w query >"$tmp/json" 2>"$tmp/err"
is 0 "$?" "inaudit-bench --quick --json -w query exits 0"
like "$(cat "$tmp/json")" '^    "query.c_point.p50_ns": [0-9]' \
    "--json prints the C point query figure"

# Two scale points: the floor's lookup is timed at each, and its growth
# is printed next to the store's.
TMPDIR=$tmp "$bench" -w scale -S 10k,20k --no-redis --json >"$tmp/scale" \
    2>"$tmp/err"
is 0 "$?" "a scale run of two points exits 0"
like "$(cat "$tmp/err")" '^ +20k +[0-9]+( +[0-9.]+ [nmu]s){5} +[0-9]+ ' \
    "...its rows have the floor's lookup p50"
like "$(cat "$tmp/err")" "^  \\(over the same range the floor's O\\(1\\) lookup grows [0-9.]+x" \
    "...and the targets show the floor's growth"
like "$(cat "$tmp/scale")" '^    "scale.growth.floor_query_p50": [0-9]' \
    "...which --json has too"

# Usage errors exit 2.
"$bench" --no-such-option >/dev/null 2>&1
is 2 "$?" "an unknown option exits 2"
"$bench" -F 1001 >/dev/null 2>&1
is 2 "$?" "a flush delay past 1000 ms exits 2"
"$bench" --flush-delay 10ms >/dev/null 2>&1
is 2 "$?" "a flush delay that is not a number exits 2"

# The layout probe applies a small stream in both layouts and reads every
# count back; bad counts and stray arguments are usage errors.
probe="${INA_TEST_BUILDDIR:-$(dirname "$0")}/../tools/layout-probe"
TMPDIR=$tmp "$probe" -n 20000 -b 5000 >"$tmp/probe" 2>&1
is 0 "$?" "layout-probe -n 20000 -b 5000 exits 0"
like "$(cat "$tmp/probe")" '^  per width +9 keys an event, file front [0-9]+ bytes an event, counts exact \(180000\)$' \
    "...the per-width layout's counts are exact"
like "$(cat "$tmp/probe")" '^  per granularity +3 keys an event, file front [0-9]+ bytes an event, counts exact \(180000\)$' \
    "...and the per-granularity layout's"
is "" "$(ls "$tmp" | grep layout-probe)" "...and its directory is removed"
for bad in "-n 0" "-n 12x" "-b -1" "extra"; do
    # shellcheck disable=SC2086
    "$probe" $bad >/dev/null 2>&1
    is 2 "$?" "layout-probe $bad exits 2"
done
