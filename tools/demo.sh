#!/bin/sh
# demo.sh - the live demo: fill a temporary store with forked workers,
# run the Momentum-style policies on generated SMTP sessions against it,
# and show what auditctl says about it.  Run from the build tree (the
# quickstart does: ./quickstart demo).  The temporary directory is removed
# at the end unless INA_DEMO_KEEP is set.
#
# SPDX-License-Identifier: MIT

set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
tools=$top/tools
dir=$(mktemp -d "${TMPDIR:-/tmp}/inbound-audit-demo.XXXXXX")
if [ -z "${INA_DEMO_KEEP:-}" ]; then
    trap 'rm -rf "$dir"' EXIT
fi
conf=$dir/inbound_audit.conf
export LUA_CPATH="$top/t/cmod/?.so;;"

echo "== 1. Four MTA workers record a synthetic inbound mix"
"$tools/inaudit-demo" -w 4 -n 5000 -d "$dir"

if [ -x "$tools/inaudit-policy" ]; then
    echo
    echo "== 2. The reference page's example policy, unchanged, on 200 sessions"
    "$tools/inaudit-policy" -c "$conf" -s "$top/lua/policies/seed_example.lua" \
        -g 200 > "$dir/seed.out"
    tail -n 5 "$dir/seed.out"
    echo
    echo "== 3. A /24 connection limit over the last 5 minutes, on 2000 sessions"
    "$tools/inaudit-policy" -c "$conf" -s "$top/lua/policies/limit_24.lua" \
        -g 2000 > "$dir/limit.out"
    grep -E ' (4|5)[0-9][0-9] ' "$dir/limit.out" | head -n 8 || true
    printf '%s of 2000 sessions refused by the policy\n' \
        "$(grep -c ' connect disconnect ' "$dir/limit.out" || true)"
fi

if [ -x "$tools/auditctl" ]; then
    echo
    echo "== 4. auditctl top 60,10"
    "$tools/auditctl" -c "$conf" top 60,10 -n 5
    echo
    echo "== 5. auditctl stats"
    "$tools/auditctl" -c "$conf" stats
fi
