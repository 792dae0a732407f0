# libtap.sh - TAP helpers for the shell tests
#
# Source it from a #!/bin/sh test.  The names follow C TAP Harness and
# remctl's shell helpers: plan, plan_lazy, skip_all, ok, is, like, unlike,
# ok_program, skip, diag, bail.  A test exits 0 only if every test passed
# and the plan was met; at exit, the command given to tap_cleanup runs
# first (removing the test's directory, stopping its servers).
#
# SPDX-License-Identifier: MIT

_tap_n=0
_tap_failed=0
_tap_plan=
_tap_lazy=
_tap_cleanup=

# plan N - announce N tests
plan() {
    _tap_plan=$1
    echo "1..$1"
}

# plan_lazy - announce the plan at the end, from the count run
plan_lazy() {
    _tap_lazy=1
}

# skip_all REASON - skip the whole test file
skip_all() {
    echo "1..0 # SKIP $*"
    _tap_plan=0
    exit 0
}

# tap_cleanup COMMAND - run COMMAND (with eval) at exit
tap_cleanup() {
    _tap_cleanup=$1
}

# diag LINE... - print diagnostics, each line behind "# ", on stderr
diag() {
    printf '%s\n' "$@" | sed 's/^/# /' >&2
}

# bail REASON - stop the whole run
bail() {
    echo "Bail out! $*"
    exit 255
}

# _tap_result STATUS DESC - print one result; STATUS 0 is a pass
_tap_result() {
    _tap_n=$((_tap_n + 1))
    if [ "$1" -eq 0 ]; then
        echo "ok $_tap_n - $2"
    else
        echo "not ok $_tap_n - $2"
        _tap_failed=$((_tap_failed + 1))
    fi
    return "$1"
}

# ok DESC COMMAND... - pass if COMMAND exits 0
ok() {
    _tap_desc=$1
    shift
    if "$@"; then
        _tap_result 0 "$_tap_desc"
    else
        _tap_result 1 "$_tap_desc"
    fi
}

# skip REASON - count one test as skipped
skip() {
    _tap_n=$((_tap_n + 1))
    echo "ok $_tap_n # skip $*"
}

# is WANT SEEN DESC - pass if the two strings are equal
is() {
    if [ "$1" = "$2" ]; then
        _tap_result 0 "$3"
    else
        _tap_result 1 "$3"
        diag "wanted:" "$1" "   got:" "$2"
        return 1
    fi
}

# like SEEN REGEX DESC - pass if a line of SEEN matches the extended
# regular expression REGEX
like() {
    if printf '%s\n' "$1" | grep -Eq -- "$2"; then
        _tap_result 0 "$3"
    else
        _tap_result 1 "$3"
        diag "no line matches: $2" "in:" "$1"
        return 1
    fi
}

# unlike SEEN REGEX DESC - pass if no line of SEEN matches REGEX
unlike() {
    if printf '%s\n' "$1" | grep -Eq -- "$2"; then
        _tap_result 1 "$3"
        diag "a line matches: $2" "in:" "$1"
        return 1
    else
        _tap_result 0 "$3"
    fi
}

# ok_program DESC STATUS OUTPUT COMMAND... - pass if COMMAND exits with
# STATUS and prints exactly OUTPUT on stdout and stderr together (one
# trailing newline is dropped, as $(...) does)
ok_program() {
    _tap_desc=$1
    _tap_want_status=$2
    _tap_want_output=$3
    shift 3
    _tap_output=$("$@" 2>&1)
    _tap_status=$?
    if [ "$_tap_status" = "$_tap_want_status" ] \
        && [ "$_tap_output" = "$_tap_want_output" ]; then
        _tap_result 0 "$_tap_desc"
    else
        _tap_result 1 "$_tap_desc"
        diag "command: $*" \
            "wanted status $_tap_want_status, got $_tap_status" \
            "wanted output:" "$_tap_want_output" "got output:" "$_tap_output"
        return 1
    fi
}

# _tap_end - at exit: clean up, check the plan, set the exit status
_tap_end() {
    _tap_status=$?
    if [ -n "$_tap_cleanup" ]; then
        eval "$_tap_cleanup"
    fi
    if [ "$_tap_plan" = 0 ]; then
        exit "$_tap_status"
    fi
    if [ -n "$_tap_lazy" ]; then
        echo "1..$_tap_n"
    elif [ "$_tap_plan" != "$_tap_n" ]; then
        diag "planned ${_tap_plan:-no} tests but ran $_tap_n"
        exit 255
    fi
    if [ "$_tap_failed" -gt 0 ]; then
        diag "failed $_tap_failed of $_tap_n tests"
        [ "$_tap_failed" -gt 254 ] && _tap_failed=254
        exit "$_tap_failed"
    fi
    exit "$_tap_status"
}

trap _tap_end EXIT
