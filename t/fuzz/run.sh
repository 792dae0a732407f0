#!/bin/sh
# run.sh - build the libFuzzer targets of t/fuzz/ and run each for a while
#
# Builds fuzz-cidr, fuzz-monitor, fuzz-conf and fuzz-lua-options with
# clang's -fsanitize=fuzzer,address,undefined (UBSan made fatal), from the
# sources directly: the library's sources as Makefile.am lists them, and
# lua/audit.c for the Lua target.  Then runs each target for FUZZ_SECONDS
# on a copy of its seed corpus t/fuzz/corpus/<target>/ (the committed
# corpus is never written), prints the executions and time of each, and
# exits non-zero if a target failed to build, crashed, leaked, timed out
# or tripped a sanitizer.  The input that did it is kept under
# <build>/artifacts/<target>/, with the command that replays it.
#
# Needs a configured tree (config.h): run ./configure first; for a VPATH
# build set INA_BUILDDIR to the directory that holds config.h.  Needs
# clang and its runtime (Debian: clang, libclang-rt-14-dev), and the
# -dev packages the library needs (liblmdb-dev, libconfuse-dev,
# liblua5.4-dev).
#
# Environment:
#   FUZZ_SECONDS   seconds each target runs (default 20, so 80 in all)
#   FUZZ_TARGETS   targets to build and run (default: all four)
#   FUZZ_BUILD     build directory (default t/fuzz/build, gitignored)
#   FUZZ_FLAGS     extra libFuzzer flags for every run (e.g. -jobs=2)
#   INA_BUILDDIR   directory holding config.h (default: the source tree)
#   CC             the compiler (default clang)
#
# Usage: t/fuzz/run.sh [build]   ("build" only builds)
#
# SPDX-License-Identifier: MIT

set -eu

fuzzdir=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$fuzzdir/../.." && pwd)
builddir=${INA_BUILDDIR:-$srcdir}
build=${FUZZ_BUILD:-$fuzzdir/build}
seconds=${FUZZ_SECONDS:-20}
targets=${FUZZ_TARGETS:-fuzz-cidr fuzz-monitor fuzz-conf fuzz-lua-options}
flags=${FUZZ_FLAGS:-}
CC=${CC:-clang}
mode=${1:-run}

SANFLAGS="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-g -O1 $SANFLAGS -fno-omit-frame-pointer -Wall -Wextra"

# die - print a message and exit 1
die() {
    echo "run.sh: $*" >&2
    exit 1
}

# pkgflags - pkg-config's flags for a package, or the fallback given
pkgflags() {
    pkg-config "$1" "$2" 2>/dev/null || echo "$3"
}

# libsources - the library's C sources, as Makefile.am lists them
libsources() {
    awk '/^lib_libinaudit_core_la_SOURCES[ \t]*\+?=/ { f = 1 }
         f { line = $0; sub(/\\$/, "", line); sub(/^[^=]*=/, "", line);
             print line; if ($0 !~ /\\$/) f = 0 }' "$srcdir/Makefile.am" |
        tr ' \t' '\n\n' | grep '\.c$' || true
}

# dict - the dictionary of a target, if it has one
dict() {
    case $1 in
    fuzz-cidr | fuzz-lua-options) echo "$fuzzdir/cidr.dict" ;;
    fuzz-monitor) echo "$fuzzdir/monitor.dict" ;;
    fuzz-conf) echo "$fuzzdir/conf.dict" ;;
    esac
}

[ -f "$builddir/config.h" ] ||
    die "no config.h in $builddir: run ./configure first (or set INA_BUILDDIR)"
command -v "$CC" >/dev/null 2>&1 ||
    die "$CC not found: install the Debian packages clang libclang-rt-14-dev"
case $seconds in
'' | *[!0-9]*) die "FUZZ_SECONDS must be a number of seconds" ;;
esac

CPPFLAGS="-I$builddir -I$srcdir/lib -I$srcdir/lua -I$fuzzdir \
    $(pkgflags --cflags lmdb '') $(pkgflags --cflags libconfuse '') \
    $(pkgflags --cflags lua5.4 -I/usr/include/lua5.4)"
LIBS="$(pkgflags --libs lmdb -llmdb) $(pkgflags --libs libconfuse -lconfuse) \
    -lpthread"
LUALIBS=$(pkgflags --libs lua5.4 -llua5.4)

# Build: the library's objects once, then each target.
sources=$(libsources)
[ -n "$sources" ] || sources=$(cd "$srcdir" && ls lib/*.c)
mkdir -p "$build/obj"
echo "run.sh: building in $build with $CC"
objs=
for src in $sources lua/audit.c; do
    obj=$build/obj/$(echo "$src" | tr / _ | sed 's/\.c$/.o/')
    # shellcheck disable=SC2086
    $CC $CFLAGS $CPPFLAGS -c -o "$obj" "$srcdir/$src" ||
        die "cannot compile $src"
    case $src in
    lua/*) luaobj=$obj ;;
    *) objs="$objs $obj" ;;
    esac
done
for t in $targets; do
    [ -f "$fuzzdir/$t.c" ] || die "no target $t"
    extra=
    [ "$t" = fuzz-lua-options ] && extra="$luaobj $LUALIBS"
    # shellcheck disable=SC2086
    $CC $CFLAGS $CPPFLAGS -o "$build/$t" "$fuzzdir/$t.c" $objs $extra \
        $LIBS -lm || die "cannot build $t"
done
[ "$mode" = build ] && exit 0

# Run: each target on a fresh copy of its corpus.  Each gets its own
# TMPDIR (stores, configuration files) under the build directory.
failed=
total=0
summary=
for t in $targets; do
    corpus=$build/corpus/$t
    art=$build/artifacts/$t
    log=$build/$t.log
    rm -rf "$corpus" "$art" "$build/tmp"
    mkdir -p "$corpus" "$art" "$build/tmp"
    cp "$fuzzdir/corpus/$t/"* "$corpus/"
    d=$(dict "$t")
    echo "run.sh: $t for ${seconds}s"
    start=$(date +%s)
    status=0
    # shellcheck disable=SC2086
    TMPDIR=$build/tmp \
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$build/$t" -max_total_time="$seconds" -print_final_stats=1 \
        -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$art/" \
        ${d:+-dict="$d"} $flags "$corpus" >"$log" 2>&1 || status=$?
    end=$(date +%s)
    rm -rf "$build/tmp"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" |
        tail -n 1)
    execs=${execs:-0}
    secs=$((end - start))
    total=$((total + secs))
    crashes=$(find "$art" -type f | head -n 1)
    if [ "$status" -ne 0 ] || [ -n "$crashes" ]; then
        result="FAILED (exit $status)"
        failed="$failed $t"
        echo "run.sh: $t failed; the end of $log:" >&2
        grep -v -e '^#[0-9]' "$log" | tail -n 40 >&2
        for a in $(find "$art" -type f); do
            echo "run.sh: replay with: $build/$t $a" >&2
        done
    else
        result=ok
    fi
    line=$(printf '%-18s %4ss %12s executions  %s' "$t" "$secs" "$execs" \
        "$result")
    echo "$line"
    summary="$summary$line
"
done

echo "run.sh: summary (${total}s in all)"
printf '%s' "$summary"
[ -z "$failed" ] || die "failed:$failed"
echo "run.sh: no crash, leak or sanitizer report"
