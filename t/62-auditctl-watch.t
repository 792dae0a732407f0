#!/bin/sh
# 62-auditctl-watch.t - auditctl watch, driven in a real terminal
#
# watch runs in a detached tmux session of 80x24 on a private server
# socket.  The test waits for its screen to show the known top blocks,
# records more by hand and waits for the refresh to show them, shrinks
# the window, then sends "q" and checks that watch ended with status 0.
# The clock is the real one, so the windows asked for are 0..10 of
# 60,10: a minute turning during the test moves no count out of them.
#
# SPDX-License-Identifier: MIT

. "${INA_TEST_SRCDIR:-$(dirname "$0")}/tap/auditctl.sh"
command -v tmux >/dev/null 2>&1 || skip_all "tmux is needed (Debian package tmux)"
plan 23

sock=$dir/tmux.sock
tap_cleanup 'tmux -S "$sock" kill-server >/dev/null 2>&1; rm -rf "$dir"'

# screen - the visible screen of the watch session
screen() {
    tmux -S "$sock" capture-pane -p -t watch 2>/dev/null
}

# wait_for REGEX... - wait up to 10 s for one screen that has a line
# matching each REGEX (a screen caught while watch draws it has the top
# lines only, so the caller names a line near the bottom too); leaves
# the last screen in $scr
wait_for() {
    _i=0
    while [ $_i -lt 100 ]; do
        scr=$(screen)
        _all=1
        for _re in "$@"; do
            printf '%s\n' "$scr" | grep -Eq -- "$_re" || _all=0
        done
        [ $_all = 1 ] && return 0
        sleep 0.1
        _i=$((_i + 1))
    done
    return 1
}

# wait_gone - wait up to 5 s for the session to end
wait_gone() {
    _i=0
    while [ $_i -lt 50 ]; do
        tmux -S "$sock" has-session -t watch 2>/dev/null || return 0
        sleep 0.1
        _i=$((_i + 1))
    done
    return 1
}

# Without a terminal, or with --json, watch refuses.
ok_program "watch without a terminal exits 1" 1 \
    "auditctl: watch: needs a terminal on standard input and output" \
    ctl watch 60,10 </dev/null
ok_program "watch --json is a usage error" 2 \
    "auditctl: watch: watch has no JSON output; use top --json
usage: auditctl [-c CONF] [--json] watch MONITOR [--event E] [--prefix /N] [--start A] [--end B] [-n K] [-4|-6] [-i SECONDS]" \
    ctl --json watch 60,10

ok "4 forked writers fill the store" fill_known

ok "start watch in an 80x24 tmux session" \
    env -u TMUX tmux -S "$sock" new-session -d -s watch -x 80 -y 24 \
    "'$AUDITCTL' -c '$conf' watch 60,10 --end 10 -i 1; echo \$? >'$dir/status'"
ok "the screen shows the top IPv4 block" \
    wait_for '^ +1  192\.0\.2\.0/24 +300 +78\.9%' \
        '^ +1  2001:db8::/48 +80 +66\.7%'
like "$scr" '^auditctl watch  '"$dir"'/store  ' "...under a title naming the store"
like "$scr" '^map .* of 16\.0 MiB .*counters 48 ' "...the map use and counters"
like "$scr" '^degraded no  reaped 0  dropped 0$' "...the degraded flag"
like "$scr" '^monitor 60,10  windows 0\.\.10  every 1s  q: quit$' \
    "...the monitor and windows"
like "$scr" '^IPv4 /24 by connections: 380 in all$' "...the IPv4 total"
like "$scr" '^ +3  203\.0\.113\.0/24 +20 +5\.3%' "...the third IPv4 block"
like "$scr" '^IPv6 /48 by connections: 120 in all$' "...the IPv6 total"
like "$scr" '^ +1  2001:db8::/48 +80 +66\.7%' "...and the top IPv6 block"
is 80x24 "$(tmux -S "$sock" display-message -p -t watch '#{pane_width}x#{pane_height}')" \
    "the terminal is 80x24"
is "" "$(printf '%s\n' "$scr" | awk 'length > 80')" "...none over 80 columns"

# A refresh shows what is recorded meanwhile.
ok "record 1000 connections by hand" quiet ctl record connection 203.0.113.9 1000
ok "the next refresh puts 203.0.113.0/24 first" \
    wait_for '^ +1  203\.0\.113\.0/24 +1020 +73\.9%' \
        '^ +2  192\.0\.2\.0/24 +300 +21\.7%'
like "$scr" '^ +2  192\.0\.2\.0/24 +300 +21\.7%' "...and the others below it"

# A smaller window still shows the header and the top block.
ok "resize to 60x12" tmux -S "$sock" resize-window -t watch -x 60 -y 12
ok "after the resize the top block is still there" \
    wait_for '^ +1  203\.0\.113\.0/24 +1020 '
is "" "$(printf '%s\n' "$scr" | awk 'length > 60')" "...within 60 columns"

# q quits.
tmux -S "$sock" send-keys -t watch q
ok "q ends watch" wait_gone
is 0 "$(cat "$dir/status" 2>/dev/null)" "...with exit status 0"
