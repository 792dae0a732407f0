#!/bin/sh
# faketime-sweep.sh - remove what libfaketime left in /dev/shm for dead pids
#
# libfaketime, preloaded, makes a semaphore and a shared memory object
# named after its process's pid (/dev/shm/sem.faketime_sem_PID and
# /dev/shm/faketime_shm_PID) and removes them at exit.  A process killed,
# or ended by _exit(), leaves them behind, and a later process that gets
# the same pid back cannot make its own: it prints "sem_open failed" on
# stderr and its clock may not be the one asked for.  With pid_max at
# 32768 a test run recycles pids often enough to meet this, so the test
# helpers run this before they start a process under libfaketime.  Only
# objects of pids with no process are removed.
#
# SPDX-License-Identifier: MIT

for f in /dev/shm/sem.faketime_sem_* /dev/shm/faketime_shm_*; do
    [ -e "$f" ] || continue
    pid=${f##*_}
    case $pid in
    '' | *[!0-9]*) continue ;;
    esac
    [ -d "/proc/$pid" ] || rm -f "$f"
done
exit 0
