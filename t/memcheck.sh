#!/bin/sh
# memcheck.sh - the whole test suite under ASan+UBSan, or under valgrind
#
# Usage (from the top build directory; "make sanitize" and "make
# valgrind" run it so):
#
#   t/memcheck.sh sanitize   clang -fsanitize=address,undefined build in
#                            _sanitize/, "make check" there, LeakSanitizer
#                            on; any report fails the test that made it
#   t/memcheck.sh valgrind   -g -O1 build in _valgrind/, "make check"
#                            there with the compiled tests, auditctl and
#                            the Lua interpreter under valgrind memcheck
#
# Each mode builds in a tree of its own, so the developer's build is left
# alone.  configure refuses a VPATH build of a source tree that is itself
# configured (as a developer's tree is), so the sources are first copied
# into _<mode>/src, never configured (the work tree's files that git does
# not ignore, plus the generated configure and Makefile.in; or, outside
# git, what "make distdir" copies), and the build is a VPATH build of
# that copy in _<mode>/build.  Later runs rebuild what changed; remove
# _<mode>/ to start afresh.
#
# Sanitize: the C tests and the tools are instrumented executables that
# carry the sanitizer runtime.  The Lua module (msys/audit.so) is
# instrumented too, but a shared object has no runtime of its own, so
# Debian's lua5.4 cannot load it.  Instead of preloading the runtime into
# lua5.4 (which every program the Lua tests start would inherit),
# _sanitize/bin/lua5.4 is t/memcheck-lua.c, a script-mode lua5.4 built
# with the same flags, found first on PATH by the scripts'
# "#!/usr/bin/env lua5.4" and by their re-runs (tap.setup).
#
# Valgrind: the tests run with LOG_COMPILER set to _valgrind/bin/run-test,
# which runs a compiled test (ELF) under valgrind with --trace-children
# (for tests that exec), and a script directly; the Lua scripts then find
# _valgrind/bin/lua5.4 first on PATH, and the shell scripts run
# _valgrind/bin/auditctl (through AUDITCTL, which t/tap/auditctl.sh
# honours), both of which run the real program under valgrind.  The
# helpers the scripts run by path (t/fill, tools/inaudit-policy) run
# natively here, and so does auditctl in the tests of MEMCHECK_NATIVE
# (t/64-auditctl-concurrent.t, which measures how many auditctl runs fit
# in a burst of writes); make sanitize covers them all.  A Lua test runs itself again through
# arg[-1] (tap.setup); LUA_INIT_5_4 points arg[-1] back at the wrapper so
# that the second run, the one that tests, is under valgrind too.
# Errors and definite or indirect leaks make valgrind exit 1; "still
# reachable" memory (forked children that _exit) is not counted.
# t/valgrind.supp holds suppressions for third-party libraries only.
#
# Environment: MAKE (make), CC (sanitize: clang, valgrind: gcc),
# MEMCHECK_JOBS (make -j, default the number of CPUs), TESTS (a subset,
# as for make check), MEMCHECK_NATIVE (valgrind: tests whose auditctl
# runs natively, default t/64-auditctl-concurrent.t).
#
# SPDX-License-Identifier: MIT

set -eu

mode=${1:-}
MAKE=${MAKE:-make}
top=$(pwd)
srcdir=$(cd "$(dirname "$0")/.." && pwd)
jobs=${MEMCHECK_JOBS:-$(nproc 2>/dev/null || echo 1)}

# die - print a message and exit 1
die() {
    echo "memcheck.sh: $*" >&2
    exit 1
}

case $mode in
sanitize | valgrind) ;;
*) die "usage: memcheck.sh sanitize|valgrind" ;;
esac
[ -f "$top/Makefile" ] || die "run from a configured top build directory"

dir=$top/_$mode
mkdir -p "$dir/build" "$dir/bin"

# srcfiles - the files of a git work tree that are not ignored, and the
# generated build system, so that the copy needs no bootstrap
srcfiles() {
    {
        git ls-files -co --exclude-standard
        ls -d configure Makefile.in aclocal.m4 config.h.in build-aux/* m4/*
    } | sort -u | while IFS= read -r f; do
        [ -f "$f" ] && printf '%s\n' "$f"
    done
}

# The sources: in a git work tree, its files as they are now (tracked or
# new, not ignored); otherwise (a release tree) what "make distdir"
# copies.  Times are kept, so that a later run rebuilds only what changed.
echo "memcheck.sh: copying the sources to $dir/src"
rm -rf "$dir/src"
mkdir -p "$dir/src"
if git -C "$srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$srcdir" && srcfiles | tar -cf - -T -) | (cd "$dir/src" && tar -xpf -)
else
    $MAKE -s distdir distdir="$dir/src" top_distdir="$dir/src" >/dev/null
fi
[ -x "$dir/src/configure" ] || die "no configure in the copy: run ./bootstrap"

# configure CC=... CFLAGS=... - configure the build tree, unless it
# already is with this CC and these CFLAGS; a tree built with others is
# removed first (configure's test programs leak by design: no leak
# checks there)
configure() {
    if [ -f "$dir/build/config.status" ] &&
        [ "$(sed -n 's/^CC = //p; s/^CFLAGS = //p' "$dir/build/Makefile")" = \
          "$(printf '%s\n' "${1#CC=}" "${2#CFLAGS=}")" ]; then
        return 0
    fi
    rm -rf "$dir/build"
    mkdir -p "$dir/build"
    (cd "$dir/build" && ASAN_OPTIONS=detect_leaks=0 ../src/configure -q "$@") ||
        die "configure failed (see $dir/build/config.log)"
}

lua=$(command -v lua5.4) || die "lua5.4 not found (Debian package lua5.4)"
luacflags=$(pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
lualibs=$(pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)

if [ "$mode" = sanitize ]; then
    CC=${CC:-clang}
    command -v "$CC" >/dev/null 2>&1 ||
        die "$CC not found: install the Debian packages clang libclang-rt-14-dev"
    cflags="-g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
    configure CC="$CC" CFLAGS="$cflags"
    # shellcheck disable=SC2086
    "$CC" $cflags -I"$dir/build" $luacflags -o "$dir/bin/lua5.4" \
        "$srcdir/t/memcheck-lua.c" $lualibs ||
        die "cannot build the sanitized lua5.4"
    env="export PATH='$dir/bin':\"\$\$PATH\";"
    # libfaketime (the tests' frozen clock) intercepts clock_gettime and
    # calls dlsym, which allocates: when the ASan allocator reads the
    # clock to schedule returning memory to the system, it deadlocks on
    # its own lock.  Never returning memory takes the clock read away.
    env="$env export ASAN_OPTIONS='detect_leaks=1:allocator_release_to_os_interval_ms=-1';"
    env="$env export UBSAN_OPTIONS='print_stacktrace=1:halt_on_error=1';"
    logc=
else
    command -v valgrind >/dev/null 2>&1 ||
        die "valgrind not found (Debian package valgrind)"
    # -O0: every local of a test's main() stays in its frame, so what a
    # forked child inherits and never frees is still reachable when it
    # calls _exit(), as it would be in the parent; at -O1 a pointer the
    # child no longer needs may live only in a dead register and show as
    # definitely lost.
    configure CC="${CC:-gcc}" CFLAGS="-g -O0"
    vg="valgrind -q --error-exitcode=1 --leak-check=full"
    vg="$vg --show-leak-kinds=definite,indirect"
    vg="$vg --errors-for-leak-kinds=definite,indirect --track-fds=no"
    vg="$vg --vgdb=no --suppressions=$srcdir/t/valgrind.supp"
    cat >"$dir/bin/run-test" <<EOF
#!/bin/sh
# run-test - LOG_COMPILER of make valgrind: compiled tests under valgrind
case \$(od -An -N4 -tx1 "\$1" | tr -d ' \\n') in
7f454c46) exec $vg --trace-children=yes "\$@" ;;
*) exec "\$@" ;;
esac
EOF
    cat >"$dir/bin/lua5.4" <<EOF
#!/bin/sh
# lua5.4 under valgrind; the script's own re-run (arg[-1]) comes back here
INA_MEMCHECK_LUA=\$0
LUA_INIT_5_4='arg[-1] = os.getenv("INA_MEMCHECK_LUA")'
export INA_MEMCHECK_LUA LUA_INIT_5_4
exec $vg $lua "\$@"
EOF
    cat >"$dir/bin/auditctl" <<EOF
#!/bin/sh
# auditctl under valgrind, for the shell tests (AUDITCTL names it); libtool
# runs the real program rather than its wrapper script
exec "$dir/build/libtool" --mode=execute $vg "$dir/build/tools/auditctl" "\$@"
EOF
    chmod +x "$dir/bin/run-test" "$dir/bin/lua5.4" "$dir/bin/auditctl"
    # The tests in MEMCHECK_NATIVE run auditctl natively: by default
    # t/64-auditctl-concurrent.t, which counts how many auditctl runs fit
    # in a burst of native writes.
    native=$(echo ${MEMCHECK_NATIVE-t/64-auditctl-concurrent.t} | tr ' ' '|')
    env="export PATH='$dir/bin':\"\$\$PATH\"; export AUDITCTL='$dir/bin/auditctl';"
    [ -z "$native" ] ||
        env="$env case \$\$f in $native) unset AUDITCTL;; esac;"
    logc=$dir/bin/run-test
fi

echo "memcheck.sh: building in $dir/build"
$MAKE -C "$dir/build" -s -j"$jobs" all >/dev/null
echo "memcheck.sh: make check ($mode)"
status=0
# shellcheck disable=SC2086
$MAKE -C "$dir/build" -j"$jobs" check TESTS_ENVIRONMENT="$env" \
    ${logc:+LOG_COMPILER="$logc"} ${TESTS:+TESTS="$TESTS"} || status=$?
if [ "$status" -ne 0 ]; then
    echo "memcheck.sh: $mode: FAILED; see $dir/build/test-suite.log" >&2
    exit 1
fi
echo "memcheck.sh: $mode: all tests passed"
