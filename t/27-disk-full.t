#!/bin/sh
# 27-disk-full.t - a disk that cannot hold the map fails the open cleanly
#
# Writers map the store MDB_WRITEMAP, so data.mdb is as long as the map;
# its blocks are reserved at open (env.c).  On a 16 MiB tmpfs a 64 MiB map
# cannot be reserved: the open must fail with a message that says so, not
# succeed and later kill a worker with SIGBUS on its first store into an
# unbacked page.  A map that fits opens, records (its journal too has
# its blocks) and counts.  Needs root
# to mount the tmpfs; skipped otherwise.
#
# SPDX-License-Identifier: MIT

. "${INA_TEST_SRCDIR:-$(dirname "$0")}/tap/auditctl.sh"

mnt=$dir/small
mkdir "$mnt" || bail "mkdir $mnt failed"
if [ "$(id -u)" -ne 0 ] || ! mount -t tmpfs -o size=16m tmpfs "$mnt" 2>/dev/null
then
    skip_all "needs root to mount a small tmpfs"
fi
tap_cleanup 'umount "$mnt" 2>/dev/null; rm -rf "$dir"'
plan 9

write_conf "$dir/big.conf" "$mnt/big"
sed -i 's/map_size = "16M"/map_size = "64M"/' "$dir/big.conf"
out=$("$AUDITCTL" -c "$dir/big.conf" record connection 192.0.2.1 2>&1)
is 1 $? "a 64 MiB map on a 16 MiB disk: record exits 1"
like "$out" "the disk cannot hold the map" "...saying the disk cannot hold it"
like "$out" "free space or lower map_size" "...and what to do"
out=$(df -k "$mnt" | awk 'NR == 2 { print $4 }')
ok "...and the failed reservation gave the space back" test "$out" -gt 15000

# frozen CMD... - CMD with the clock frozen when libfaketime is there:
# the record and the query below are separate runs, seconds apart under
# valgrind, and a minute boundary between them would make window 0 a new
# one
frozen() {
    if [ -n "$FAKETIME_LIB" ]; then
        at "2026-06-01 12:00:10" "$@"
    else
        "$@"
    fi
}

# A map that fits: 2 MiB on the same disk.
sed 's/map_size = "64M"/map_size = "2M"/' "$dir/big.conf" \
    | sed "s|$mnt/big|$mnt/fits|" >"$dir/fits.conf"
ok_program "a 2 MiB map fits: record works" 0 \
    "recorded 3 connections from 192.0.2.1" \
    frozen "$AUDITCTL" -c "$dir/fits.conf" record connection 192.0.2.1 3
out=$(frozen "$AUDITCTL" -c "$dir/fits.conf" query 60,10 192.0.2.1)
is 0 $? "...the query exits 0"
like "$out" "^3$" "...and counts 3"
size=$(stat -c %s "$mnt/fits/data.mdb")
blocks=$(stat -c %b "$mnt/fits/data.mdb")
is 2097152 "$size" "data.mdb is as long as the map"
ok "...and all of it is reserved" test $((blocks * 512)) -ge "$size"
