/* error.c - return codes as text
 *
 * One strerror for the three ranges of return codes: our INA_E* block,
 * LMDB's own codes and errno values (the last two through mdb_strerror,
 * which hands errno values to strerror).
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <stdarg.h>
#include <stdio.h>

#include <lmdb.h>

#include "inaudit.h"
#include "internal.h"

/* Indexed by INA_ERRCODE_LAST - rc. */
static const char *const ina_errors[] = {
    "not an address or CIDR block",                 /* INA_EBADCIDR */
    "not a monitor \"W,N\"",                        /* INA_EBADMONITOR */
    "monitor not configured",                       /* INA_ENOMONITOR */
    "window index out of range",                    /* INA_EWINDOW */
    "mask finer than the finest granularity",       /* INA_ETOOFINE */
    "no granularity configured for this address family", /* INA_ENOFAMILY */
    "not an event name",                            /* INA_EBADEVENT */
    /* INA_EVERSION */
    ("store written in an incompatible format version, or upgraded since "
     "this handle opened it"),
    "configuration error",                          /* INA_ECONF */
    "cluster metrics are not configured",           /* INA_ENOCLUSTER */
    "store opened read-only",                       /* INA_ERDONLY */
    "bad service name",                             /* INA_EBADSERVICE */
    "clock out of range",                           /* INA_ECLOCK */
    "no address given and no current connection",   /* INA_ENOADDR */
    "unsafe store directory",                       /* INA_EUNSAFE */
};

/* ina_strerror - text for any return code */

const char *
ina_strerror(int rc)
{
    if (rc >= INA_ERRCODE_FIRST && rc <= INA_ERRCODE_LAST)
        return ina_errors[INA_ERRCODE_LAST - rc];
    return mdb_strerror(rc);
}

/* err_set - format a message into a caller's buffer */

int
err_set(char *buf, size_t len, int rc, const char *fmt, ...)
{
    va_list ap;

    if (buf == NULL || len == 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return rc;
}
