/* fuzz-cidr.c - libFuzzer target: ina_cidr_parse and what follows it
 *
 * The input is handed to ina_cidr_parse() as it is, (data, size), since
 * the parser takes a length and must refuse a NUL byte among the bytes.
 * Then, for any input:
 *
 *   - an error leaves a terminated message in the caller's buffer, for a
 *     roomy buffer and for one of a few bytes (both on the heap, exactly
 *     sized, so that ASan sees any write past them);
 *   - a parse gives a well-formed struct: family 0, 4 or 6, a mask no
 *     longer than the family's, no bit set past the mask, has_mask set
 *     whenever the mask is not a host's;
 *   - ina_cidr_format() of it parses back to the same struct (has_mask
 *     aside, since the text always carries "/N"), and the text fits
 *     INA_CIDR_STRLEN;
 *   - ina_cidr_resolve() against a fixed IPv4 and a fixed IPv6 peer, and
 *     against no peer, does what lib/inaudit.h says;
 *   - for a text made only of hex digits, ':' and '.', the parser agrees
 *     with inet_pton() on whether it is an address and which one (the
 *     grammar of t/10-cidr's differential test).
 *
 * A broken property aborts, which libFuzzer reports as a crash.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inaudit.h"
#include "fuzz.h"

/* A small error buffer, to check truncation of long messages. */
#define FUZZ_SMALL_ERRLEN 7

/* cidr_check_errbuf - a message was written and is terminated in len */

static void
cidr_check_errbuf(const uint8_t *data, size_t size, const char *errbuf,
                  size_t len)
{
    FUZZ_CHECK(memchr(errbuf, '\0', len) != NULL, data, size,
               "message not terminated within %zu bytes", len);
    FUZZ_CHECK(errbuf[0] != '\0', data, size, "no message for an error");
}

/* cidr_check_struct - the invariants of a parsed block */

static void
cidr_check_struct(const uint8_t *data, size_t size, const struct ina_cidr *c)
{
    unsigned max;
    unsigned alen;
    unsigned bit;

    FUZZ_CHECK(c->family == 0 || c->family == 4 || c->family == 6, data,
               size, "family %u", c->family);
    max = c->family == 4 ? 32 : 128;
    alen = c->family == 4 ? 4 : c->family == 6 ? 16 : 0;
    FUZZ_CHECK(c->plen <= max, data, size, "mask /%u over /%u", c->plen,
               max);
    FUZZ_CHECK(c->has_mask == 0 || c->has_mask == 1, data, size,
               "has_mask %u", c->has_mask);
    FUZZ_CHECK(c->has_mask || c->plen == max, data, size,
               "no mask given but plen %u", c->plen);
    FUZZ_CHECK(c->family != 0 || c->has_mask, data, size,
               "a bare mask without has_mask");
    for (bit = 0; bit < 128; bit++)
        if (bit >= alen * 8 || bit >= c->plen)
            FUZZ_CHECK((c->addr[bit / 8] >> (7 - bit % 8) & 1) == 0, data,
                       size, "bit %u set past mask /%u (family %u)", bit,
                       c->plen, c->family);
}

/* cidr_same - the same block, has_mask aside */

static int
cidr_same(const struct ina_cidr *a, const struct ina_cidr *b)
{
    return a->family == b->family && a->plen == b->plen
           && memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

/* cidr_check_format - the text of a block parses back to it */

static void
cidr_check_format(const uint8_t *data, size_t size, const struct ina_cidr *c)
{
    struct ina_cidr back;
    char text[INA_CIDR_STRLEN + 16];
    char small[5];
    char errbuf[256];
    size_t n;
    int rc;

    memset(text, 'x', sizeof text);
    ina_cidr_format(c, text, INA_CIDR_STRLEN);
    FUZZ_CHECK(text[INA_CIDR_STRLEN] == 'x', data, size,
               "format writes past INA_CIDR_STRLEN bytes");
    n = strlen(text);
    /* The longest text is 43 bytes: one that fills the buffer was cut. */
    FUZZ_CHECK(n + 1 < INA_CIDR_STRLEN, data, size,
               "formatted text \"%s\" fills INA_CIDR_STRLEN", text);
    rc = ina_cidr_parse(text, n, &back, errbuf, sizeof errbuf);
    FUZZ_CHECK(rc == 0, data, size, "format \"%s\" does not parse: %s", text,
               errbuf);
    FUZZ_CHECK(cidr_same(c, &back), data, size,
               "format \"%s\" parses to another block (family %u/%u, "
               "plen %u/%u)", text, c->family, back.family, c->plen,
               back.plen);
    FUZZ_CHECK(back.has_mask == 1, data, size,
               "format \"%s\" parses without a mask", text);

    /* A short buffer is filled and terminated, never overrun. */
    memset(small, 'x', sizeof small);
    ina_cidr_format(c, small, sizeof small - 1);
    FUZZ_CHECK(small[sizeof small - 1] == 'x', data, size,
               "format writes past a %zu-byte buffer", sizeof small - 1);
    FUZZ_CHECK(memchr(small, '\0', sizeof small - 1) != NULL, data, size,
               "format leaves a short buffer unterminated");
}

/* cidr_check_resolve - ina_cidr_resolve against fixed peers */

static void
cidr_check_resolve(const uint8_t *data, size_t size, const struct ina_cidr *c)
{
    static const char *const peers[] = {"192.0.2.77", "2001:db8:1:2:3:4:5:6"};
    struct ina_cidr peer;
    struct ina_cidr out;
    struct ina_cidr want;
    size_t i;
    int rc;

    for (i = 0; i < sizeof peers / sizeof peers[0]; i++) {
        if (ina_cidr_parse(peers[i], strlen(peers[i]), &peer, NULL, 0) != 0)
            abort();
        memset(&out, 0xa5, sizeof out);
        rc = ina_cidr_resolve(c, &peer, &out);
        if (c->family != 0) {
            FUZZ_CHECK(rc == 0 && memcmp(&out, c, sizeof out) == 0, data,
                       size, "an address is not resolved to itself (rc %d)",
                       rc);
            continue;
        }
        if (c->plen > (peer.family == 4 ? 32 : 128)) {
            FUZZ_CHECK(rc == INA_EBADCIDR, data, size,
                       "mask /%u on peer %s: rc %d", c->plen, peers[i], rc);
            continue;
        }
        FUZZ_CHECK(rc == 0, data, size, "mask /%u on peer %s: rc %d",
                   c->plen, peers[i], rc);
        /* The peer's text under the mask, parsed, is the answer. */
        {
            char text[INA_CIDR_TEXT_MAX];
            int n = snprintf(text, sizeof text, "%s/%u", peers[i], c->plen);

            if (ina_cidr_parse(text, (size_t) n, &want, NULL, 0) != 0)
                abort();
        }
        FUZZ_CHECK(cidr_same(&out, &want) && out.has_mask == 1, data, size,
                   "mask /%u on peer %s resolves wrong", c->plen, peers[i]);
    }
    rc = ina_cidr_resolve(c, NULL, &out);
    FUZZ_CHECK(rc == (c->family == 0 ? INA_ENOADDR : 0), data, size,
               "resolve without a peer: rc %d", rc);

    /* ina_cidr_host: the full mask of the family, nothing else moved. */
    ina_cidr_host(c, &out);
    if (c->family != 0)
        FUZZ_CHECK(out.plen == (c->family == 4 ? 32 : 128)
                   && out.has_mask == 0 && out.family == c->family
                   && memcmp(out.addr, c->addr, sizeof out.addr) == 0,
                   data, size, "ina_cidr_host gives plen %u", out.plen);
}

/* cidr_check_libc - agree with inet_pton() on plain address texts
 *
 * Only texts of hex digits, ':' and '.' are compared: the grammar both
 * implement there is the same (t/10-cidr.c checks the same claim on
 * generated texts).  A mapped address is family 4 here, the last four
 * bytes of inet_pton()'s. */

static void
cidr_check_libc(const uint8_t *data, size_t size, int ours_ok,
                const struct ina_cidr *c)
{
    uint8_t want[16];
    char text[INA_CIDR_TEXT_MAX + 1];
    int is6;
    int libc_ok;
    size_t i;

    if (size == 0 || size > INA_CIDR_TEXT_MAX)
        return;
    for (i = 0; i < size; i++)
        if (strchr("0123456789abcdefABCDEF:.", data[i]) == NULL
            || data[i] == '\0')
            return;
    memcpy(text, data, size);
    text[size] = '\0';
    is6 = memchr(text, ':', size) != NULL;
    libc_ok = inet_pton(is6 ? AF_INET6 : AF_INET, text, want) == 1;
    FUZZ_CHECK(ours_ok == libc_ok, data, size, "ours %d, inet_pton %d",
               ours_ok, libc_ok);
    if (!ours_ok)
        return;
    if (is6 && c->family == 4)
        FUZZ_CHECK(memcmp(c->addr, want + 12, 4) == 0, data, size,
                   "mapped address differs from inet_pton's");
    else
        FUZZ_CHECK(memcmp(c->addr, want, is6 ? 16 : 4) == 0, data, size,
                   "address differs from inet_pton's");
}

/* LLVMFuzzerTestOneInput - one input: parse, check, format, resolve */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ina_cidr c;
    struct ina_cidr c2;
    char *errbuf;
    char *small;
    int rc;
    int rc2;

    if ((errbuf = malloc(256)) == NULL || (small = malloc(FUZZ_SMALL_ERRLEN))
        == NULL)
        abort();
    errbuf[0] = '\0';
    memset(&c, 0, sizeof c);
    rc = ina_cidr_parse((const char *) data, size, &c, errbuf, 256);
    FUZZ_CHECK(rc == 0 || rc == INA_EBADCIDR, data, size, "rc %d", rc);

    /* Without a buffer and with a tiny one, the same answer. */
    rc2 = ina_cidr_parse((const char *) data, size, &c2, NULL, 0);
    FUZZ_CHECK(rc2 == rc, data, size, "rc %d without errbuf, %d with", rc2,
               rc);
    rc2 = ina_cidr_parse((const char *) data, size, &c2, small,
                         FUZZ_SMALL_ERRLEN);
    FUZZ_CHECK(rc2 == rc, data, size, "rc %d with a small errbuf, %d", rc2,
               rc);

    if (rc != 0) {
        cidr_check_errbuf(data, size, errbuf, 256);
        cidr_check_errbuf(data, size, small, FUZZ_SMALL_ERRLEN);
        FUZZ_CHECK(strncmp(errbuf, "bad cidr \"", 10) == 0, data, size,
                   "message \"%s\"", errbuf);
    } else {
        FUZZ_CHECK(memcmp(&c, &c2, sizeof c) == 0, data, size,
                   "two parses differ");
        FUZZ_CHECK(size <= INA_CIDR_TEXT_MAX && memchr(data, '\0', size)
                   == NULL, data, size, "accepted a long text or a NUL");
        cidr_check_struct(data, size, &c);
        cidr_check_format(data, size, &c);
        cidr_check_resolve(data, size, &c);
    }
    cidr_check_libc(data, size, rc == 0, &c);
    free(small);
    free(errbuf);
    return 0;
}
