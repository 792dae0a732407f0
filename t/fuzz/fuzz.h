/* fuzz.h - what the libFuzzer targets of t/fuzz/ share
 *
 * Each target defines LLVMFuzzerTestOneInput() (and perhaps
 * LLVMFuzzerInitialize()); the prototypes are here so that the targets
 * build cleanly with -Wmissing-prototypes.  FUZZ_CHECK() is the one way a
 * target reports a broken property: it prints what failed, with the input
 * quoted, and calls abort(), which libFuzzer records as a crash and saves
 * the input of.  t/fuzz/run.sh builds and runs the targets.
 *
 * SPDX-License-Identifier: MIT
 */

#ifndef INA_FUZZ_H
#define INA_FUZZ_H 1

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Room for fuzz_quote() of any input the targets quote. */
#define FUZZ_QUOTE_LEN 1024

/* fuzz_quote - printable copy of bytes, for messages
 *
 * Printable ASCII is copied, other bytes become "\xHH", and what does
 * not fit in out (FUZZ_QUOTE_LEN bytes) is cut and marked "...".
 * Returns out. */

static inline char *
fuzz_quote(const void *data, size_t size, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = data;
    size_t i;
    size_t o = 0;

    for (i = 0; i < size && o + 8 < FUZZ_QUOTE_LEN; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
            out[o++] = (char) s[i];
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[s[i] >> 4];
            out[o++] = hex[s[i] & 0xf];
        }
    }
    if (i < size) {
        out[o++] = '.';
        out[o++] = '.';
        out[o++] = '.';
    }
    out[o] = '\0';
    return out;
}

/* fuzz_fail - report a broken property of an input and abort */

static inline void __attribute__((__noreturn__, __format__(__printf__, 6, 7)))
fuzz_fail(const char *file, int line, const char *cond, const void *data,
          size_t size, const char *fmt, ...)
{
    char quoted[FUZZ_QUOTE_LEN];
    va_list ap;

    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, cond);
    if (data != NULL)
        fprintf(stderr, "  input: \"%s\"\n", fuzz_quote(data, size, quoted));
    fprintf(stderr, "  ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

/* FUZZ_CHECK - abort with a message unless cond holds
 *
 * data and size are the input, quoted in the message (data may be NULL);
 * the rest is a printf format and its arguments saying what was seen. */
#define FUZZ_CHECK(cond, data, size, ...)                                   \
    do {                                                                    \
        if (!(cond))                                                        \
            fuzz_fail(__FILE__, __LINE__, #cond, (data), (size),            \
                      __VA_ARGS__);                                         \
    } while (0)

#endif /* INA_FUZZ_H */
