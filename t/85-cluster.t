#!/bin/sh
# 85-cluster.t - three nodes, three sync agents, one real redis-server
#
# The test starts redis-server (with a password, so AUTH is used all the
# way) on a free loopback port, makes three stores a, b and c with their
# configurations, starts an inaudit-sync agent for each, and records
# different traffic on each node with t/fill (forked writers, known
# totals) and auditctl.  After every scene it waits until every node's
# cluster-wide totals are the sum of the nodes' local totals, and then
# compares them exactly (polling with a deadline: the sleeps are never
# the assertion):
#   - the first exchange;
#   - Redis stopped for a while (counting and local queries go on, the
#     staleness shows in auditctl stats), then restarted empty;
#   - Redis frozen (SIGSTOP): local counting does not wait for it;
#   - an agent SIGKILLed right after its outbox commit, before the XADD,
#     and another right after the XADD, before it marks the message sent
#     (so Redis gets it twice): restarted, nothing lost, nothing doubled;
#   - an agent killed at a random moment while its node records;
#   - a fourth node added late catches up exactly (the streams no longer
#     hold the history since Redis restarted: the other nodes sweep).
# The password must appear in no log and in no auditctl output.
#
# SPDX-License-Identifier: MIT

: "${INA_TEST_SRCDIR:=$(cd "$(dirname "$0")" && pwd)}"
: "${INA_TEST_BUILDDIR:=$INA_TEST_SRCDIR}"
. "$INA_TEST_SRCDIR/tap/libtap.sh"

command -v redis-server >/dev/null 2>&1 \
    || skip_all "redis-server is needed (Debian package redis-server)"
command -v redis-cli >/dev/null 2>&1 \
    || skip_all "redis-cli is needed (Debian package redis-tools)"
command -v jq >/dev/null 2>&1 || skip_all "jq is needed (Debian package jq)"

AUDITCTL=$INA_TEST_BUILDDIR/../tools/auditctl
SYNC=$INA_TEST_BUILDDIR/../tools/inaudit-sync
FILL=$INA_TEST_BUILDDIR/fill
for p in "$AUDITCTL" "$SYNC" "$FILL"; do
    [ -x "$p" ] || bail "$p is missing: run make prove"
done
LC_ALL=C
export LC_ALL
unset INBOUND_AUDIT_CONF INA_SYNC_TEST_CRASH

PASSWORD=s3cret-$$-pw
DEADLINE=30             # seconds a convergence may take at most

dir=$(mktemp -d "${TMPDIR:-/tmp}/inaudit-cluster.XXXXXX") \
    || bail "mktemp failed"
redis_pid=
# cleanup - stop every agent and the server, remove the directory
cleanup() {
    for f in "$dir"/*.pid; do
        [ -f "$f" ] && kill -CONT "$(cat "$f")" 2>/dev/null
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
    done
    [ -n "$redis_pid" ] && kill -CONT "$redis_pid" 2>/dev/null
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$dir"
}
tap_cleanup cleanup
printf '%s\n' "$PASSWORD" >"$dir/redis.password"
chmod 600 "$dir/redis.password"

# redis_start - redis-server on $port, no persistence, with the password;
# returns 1 if it does not answer within 5 s
redis_start() {
    redis-server --port "$port" --bind 127.0.0.1 --save '' \
        --appendonly no --requirepass "$PASSWORD" \
        --dir "$dir" --logfile "$dir/redis.log" &
    redis_pid=$!
    echo "$redis_pid" >"$dir/redis.pid"
    i=0
    while [ $i -lt 50 ]; do
        if [ "$(rcli ping 2>/dev/null)" = PONG ]; then
            return 0
        fi
        kill -0 "$redis_pid" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    kill "$redis_pid" 2>/dev/null
    wait "$redis_pid" 2>/dev/null
    redis_pid=
    return 1
}

# redis_stop - stop the server (its data is gone: no persistence)
redis_stop() {
    kill "$redis_pid"
    wait "$redis_pid" 2>/dev/null
    redis_pid=
    rm -f "$dir/redis.pid"
}

rcli() {
    redis-cli -p "$port" -a "$PASSWORD" --no-auth-warning "$@"
}

# A free port: the first one a server starts on.
port=$((20000 + $$ % 20000))
tries=0
until redis_start; do
    tries=$((tries + 1))
    [ $tries -lt 20 ] || bail "cannot start redis-server on a loopback port"
    port=$((port + 1))
done

# node NAME - write the configuration of node NAME
node() {
    cat >"$dir/$1.conf" <<EOF
inbound_audit {
    store = "$dir/store-$1"
    map_size = "64M"
    monitors = {"60,10", "300,12"}
    ipv4_prefixes = {32, 24, 16}
    ipv6_prefixes = {128, 64, 48}
    cluster {
        redis = "127.0.0.1:$port"
        node = "$1"
        password_file = "$dir/redis.password"
    }
}
EOF
}

ctl() {
    _n=$1
    shift
    "$AUDITCTL" -c "$dir/$_n.conf" "$@"
}

# agent_start NAME - start node NAME's agent (environment passed on)
agent_start() {
    "$SYNC" -c "$dir/$1.conf" -f -v >>"$dir/agent-$1.log" 2>&1 &
    echo $! >"$dir/agent-$1.pid"
}

# agent_stop NAME - stop it with SIGTERM and wait for it; returns its
# exit status
agent_stop() {
    _p=$(cat "$dir/agent-$1.pid")
    rm -f "$dir/agent-$1.pid"
    kill "$_p" 2>/dev/null
    wait "$_p" 2>/dev/null
}

# The queries compared: event, block, window range of 300,12 (an hour:
# the test's traffic stays inside it whatever the clock).
QUERIES='connection 192.0.2.0/24
reception 0.0.0.0/0
rejection 2001:db8::/32
connection 198.51.100.7
connection 10.0.0.0/8
rejection 198.51.96.0/20'

# values NAME [--cluster] - the counts of QUERIES and the SMTP sessions
# of 192.0.2.0/24 on node NAME, one line
values() {
    _n=$1
    _c=${2:-}
    _out=
    while read -r _ev _blk; do
        _v=$(ctl "$_n" query 300,12 "$_blk" --event "$_ev" --start 0 \
            --end 12 $_c) || _v=ERR
        _out="$_out $_v"
    done <<EOF
$QUERIES
EOF
    if [ -n "$_c" ]; then
        _v=$(ctl "$_n" sessions 192.0.2.0/24 --service inbound_cidr) \
            || _v=ERR
    else
        _v=$(ctl "$_n" sessions 192.0.2.0/24) || _v=ERR
    fi
    echo "$_out $_v"
}

# sum_locals NODES... - the element-wise sum of the nodes' local values
sum_locals() {
    for _n in "$@"; do
        values "$_n"
    done | awk '{ for (i = 1; i <= NF; i++) s[i] += $i; n = NF }
        END { for (i = 1; i <= n; i++) printf " %d", s[i]; printf "\n" }'
}

# converge DESC NODES... - wait until every node's cluster values are the
# sum of the locals, then check each exactly
converge() {
    _desc=$1
    shift
    _want=$(sum_locals "$@")
    _end=$(($(date +%s) + DEADLINE))
    while [ "$(date +%s)" -lt $_end ]; do
        _done=1
        for _n in "$@"; do
            [ "$(values "$_n" --cluster)" = "$_want" ] || _done=0
        done
        [ $_done = 1 ] && break
        sleep 0.2
    done
    for _n in "$@"; do
        is "$_want" "$(values "$_n" --cluster)" \
            "$_desc: node $_n's cluster totals are the sum of the locals"
    done
}

# quiet CMD... - run CMD, output only on failure
quiet() {
    _out=$("$@" 2>&1) && return 0
    diag "$*:" "$_out"
    return 1
}

plan_lazy

for n in a b c; do
    node $n
done
ok "node a's store is made" quiet ctl a record connection 203.0.113.1
ok "node b's store is made" quiet ctl b record connection 203.0.113.2
ok "node c's store is made" quiet ctl c record connection 203.0.113.3
for n in a b c; do
    agent_start $n
done

# Different traffic on each node, from forked writers.
ok "traffic on a" "$FILL" "$dir/a.conf" 2 connection,192.0.2.1,300 \
    reception,10.1.2.3,200 rejection,2001:db8::5,50
ok "traffic on b" "$FILL" "$dir/b.conf" 3 connection,192.0.2.200,100 \
    connection,198.51.100.7,70 rejection,198.51.100.9,40
ok "traffic on c" "$FILL" "$dir/c.conf" 2 reception,10.200.0.1,90 \
    rejection,2001:db8:ff::1,30 connection,192.0.2.77,11
ok "sessions on a" quiet ctl a session open 192.0.2.10
ok "...and on c" quiet ctl c session open 192.0.2.20
ok "...two on c" quiet ctl c session open 192.0.2.21
converge "first exchange" a b c
is 3 "$(values b --cluster | awk '{ print $7 }')" \
    "inbound_cidr counts every node's SMTP sessions"

# The same totals through the Lua module, as a policy script reads them.
if command -v lua5.4 >/dev/null 2>&1 && [ -n "${LUA_CPATH:-}" ]; then
    lua=$(INBOUND_AUDIT_CONF=$dir/a.conf lua5.4 -e '
        local audit = require("msys.audit")
        io.write(audit.connections("300,12", { cidr = "192.0.2.0/24",
            startv = 0, endv = 12, cluster = true }), " ",
            audit.inbound_session_count("192.0.2.0/24", "inbound_cidr"))')
    is "$(values a --cluster | awk '{ print $1, $7 }')" "$lua" \
        "Lua's cluster = true and inbound_cidr read the same totals"
else
    skip "lua5.4 and the module of the build (make prove) are needed"
fi

out=$(ctl a stats)
like "$out" '^node b +lag [0-9.]+ s, message [0-9]+, ok' \
    "stats shows node b, fresh"
like "$out" '^node c +lag [0-9.]+ s, message [0-9]+, ok' "...and node c"
like "$out" '^sync_lag +[0-9.]+ s \(the stalest of 2 nodes\)' \
    "...and the worst staleness"
doc=$(ctl a --json stats)
is "b c" "$(echo "$doc" | jq -r '[.cluster.peers[].node] | join(" ")')" \
    "stats --json lists the other nodes"
is "ok ok" "$(echo "$doc" | jq -r '[.cluster.peers[].state] | join(" ")')" \
    "...both ok"
is true "$(echo "$doc" | jq '.cluster.sync_lag < 5')" \
    "...with a sync lag of seconds at most"

# Redis stopped for a while: counting and local queries go on.
redis_stop
start=$(date +%s)
ok "with Redis down, a records" "$FILL" "$dir/a.conf" 2 \
    connection,192.0.2.1,100 reception,10.9.9.9,25
ok "...and b" "$FILL" "$dir/b.conf" 1 rejection,2001:db8::77,60
ok "...and c" quiet ctl c record connection 198.51.100.7 5
ok "...and sessions change" quiet ctl a session close 192.0.2.10
is 1 $(($(date +%s) - start <= 5)) "...at once"
is 800 "$(ctl a query 60,10 192.0.2.1 --start 0 --end 10)" \
    "...and local queries answer"
sleep 2
doc=$(ctl a --json stats)
is true "$(echo "$doc" | jq '.cluster.sync_lag >= 1.5')" \
    "stats shows the cluster totals going stale"
like "$(ctl b stats)" '^node a +lag [0-9.]+ s' "...on b too"
redis_start || bail "cannot restart redis-server"
converge "Redis restarted empty" a b c

# Redis frozen: local counting does not wait.
kill -STOP "$redis_pid"
start=$(date +%s)
ok "with Redis frozen, c records" "$FILL" "$dir/c.conf" 2 \
    connection,192.0.2.77,50
is 1 $(($(date +%s) - start <= 3)) "...at once"
kill -CONT "$redis_pid"
converge "Redis thawed" a b c

# An agent killed between its outbox commit and the XADD.
agent_stop a
INA_SYNC_TEST_CRASH=after-commit agent_start a
ok "a records" quiet ctl a record rejection 198.51.100.9 7
i=0
while kill -0 "$(cat "$dir/agent-a.pid")" 2>/dev/null && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
ok "a's agent died by SIGKILL after the commit" \
    sh -c "! kill -0 $(cat "$dir/agent-a.pid") 2>/dev/null"
wait "$(cat "$dir/agent-a.pid")" 2>/dev/null
is 1 "$(ctl a --json stats | jq '.cluster.self.outbox')" \
    "...leaving its message in the outbox"
agent_start a
converge "a's agent restarted after a kill before XADD" a b c

# An agent killed between the XADD and marking the message sent: Redis
# gets the message twice.
agent_stop b
INA_SYNC_TEST_CRASH=after-xadd agent_start b
ok "b records" quiet ctl b record connection 192.0.2.200 9
i=0
while kill -0 "$(cat "$dir/agent-b.pid")" 2>/dev/null && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
wait "$(cat "$dir/agent-b.pid")" 2>/dev/null
agent_start b
converge "b's agent restarted after a kill after XADD" a b c
# Messages of b's stream, and how many repeat a number before them.
dups=$(rcli eval "local n, d, seen = 0, 0, {}
    for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
        local f = e[2]
        for i = 1, #f, 2 do
            if f[i] == 'seq' then
                n = n + 1
                if seen[f[i + 1]] then d = d + 1 end
                seen[f[i + 1]] = true
            end
        end
    end
    return d" 1 inbound-audit:stream:b)
is 1 $((dups >= 1)) "...where Redis did hold a message twice ($dups repeated)"

# An agent killed at a random moment while its node records.
"$FILL" -d 200 "$dir/c.conf" 2 connection,192.0.2.77,2000 \
    reception,10.200.0.1,1000 &
fillpid=$!
sleep 0.7
kill -9 "$(cat "$dir/agent-c.pid")"
wait "$(cat "$dir/agent-c.pid")" 2>/dev/null
ok "c's writers finish" wait $fillpid
agent_start c
converge "c's agent killed mid-publish and restarted" a b c

# A node added late, with traffic of its own before its agent starts;
# Redis restarted since the others began, so their history comes by
# sweeps.
node d
ok "traffic on the late node d" "$FILL" "$dir/d.conf" 2 \
    connection,192.0.2.44,33 rejection,198.51.100.7,12
ok "...and a session" quiet ctl d session open 192.0.2.45
agent_start d
converge "node d added late" a b c d
like "$(ctl d stats)" '^node a +lag [0-9.]+ s, message [0-9]+, ok' \
    "d's stats show a, in step"

# Nothing went wrong in the agents, and nothing shows the password.
is 0 "$(cat "$dir"/agent-*.log | grep -c -e 'apply:' -e 'collect:')" \
    "no agent failed to collect or apply"
all=$(cat "$dir"/agent-*.log; ctl a show config; ctl a --json show config;
    ctl a stats; ctl a --json stats)
unlike "$all" "$PASSWORD" "the password appears in no log and no output"
like "$(ctl a --json show config)" '"password_file": "' \
    "show config names the password file"

# A wrong password: the agent says Redis refused it, and not what it was.
printf 'wrong-%s\n' "$PASSWORD" >"$dir/bad.password"
sed "s|$dir/redis.password|$dir/bad.password|; s|store-a|store-x|" \
    "$dir/a.conf" >"$dir/x.conf"
out=$("$SYNC" -c "$dir/x.conf" -f -1 2>&1)
is 1 $? "an agent with a wrong password fails in one-shot mode"
like "$out" 'AUTH: (WRONGPASS|ERR invalid)' "...saying Redis refused it"
unlike "$out" "wrong-" "...without printing the password"

# One agent per store.
out=$("$SYNC" -c "$dir/a.conf" -f -1 2>&1)
is 1 $? "a second agent on a store is refused"
like "$out" 'another inaudit-sync runs on it' "...and says why"

for n in a b c d; do
    agent_stop $n
    is 0 $? "node $n's agent stops cleanly on SIGTERM"
done
