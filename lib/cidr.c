/* cidr.c - parse, resolve and format addresses and CIDR blocks
 *
 * Turns the text forms the SPEC accepts (dotted-quad IPv4, every RFC 4291
 * IPv6 form with or without an embedded IPv4 tail, IPv6 in square
 * brackets with the mask inside or outside them, an optional "/N" and a
 * bare "/N") into a struct ina_cidr, and writes one back as "a.b.c.d/N"
 * or in the RFC 5952 form.  The parsers are our own rather than
 * inet_pton(), so that every refusal comes with a message that says what
 * is wrong, and so that the grammar does not depend on the C library.
 *
 * Two rules are stricter than inet_aton(3): an IPv4 address has exactly
 * four decimal parts, and a part or a mask with a leading zero ("01",
 * "/08") is refused, because inet_aton() would read it as octal and the
 * same text would then name two different addresses.  IPv6 zone indices
 * ("fe80::1%eth0") are refused: a counter has no use for them.
 *
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address that
 * the connection really came from, so it is stored as family 4 with its
 * mask reduced by 96.  Every function here is pure and thread-safe.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "inaudit.h"
#include "internal.h"

/* At most this many bytes of the input are quoted in a message. */
#define CIDR_QUOTE_MAX INA_CIDR_TEXT_MAX
/* Room for CIDR_QUOTE_MAX escaped bytes ("\xHH" each), "..." and NUL. */
#define CIDR_QUOTE_LEN (4 * CIDR_QUOTE_MAX + 4)

/* The input being parsed and where its errors go. */
struct cidr_ctx {
    const char *text;
    size_t len;
    char *errbuf;
    size_t errlen;
};

/* cidr_quote - copy bytes for a message, escaping what is not printable
 *
 * Printable ASCII is copied, a double quote and a backslash get a
 * backslash, anything else becomes "\xHH".  Input beyond CIDR_QUOTE_MAX
 * bytes is cut and marked with "...".  out must hold CIDR_QUOTE_LEN
 * bytes. */

static void
cidr_quote(const char *s, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;
    char *p = out;
    unsigned char c;

    for (i = 0; i < n && i < CIDR_QUOTE_MAX; i++) {
        c = (unsigned char) s[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char) c;
        } else if (c >= 0x20 && c < 0x7f) {
            *p++ = (char) c;
        } else {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];
        }
    }
    if (n > CIDR_QUOTE_MAX) {
        memcpy(p, "...", 3);
        p += 3;
    }
    *p = '\0';
}

/* cidr_fail - report a parse error quoting the whole input */

static int INA_PRINTF(2, 3)
cidr_fail(const struct cidr_ctx *cx, const char *fmt, ...)
{
    char quoted[CIDR_QUOTE_LEN];
    char detail[CIDR_QUOTE_LEN + 128];
    va_list ap;

    if (cx->errbuf == NULL || cx->errlen == 0)
        return INA_EBADCIDR;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    cidr_quote(cx->text, cx->len, quoted);
    return err_set(cx->errbuf, cx->errlen, INA_EBADCIDR, "bad cidr \"%s\": %s",
                   quoted, detail);
}

/* cidr_isdigit - a decimal digit, whatever the locale */

static int
cidr_isdigit(int c)
{
    return c >= '0' && c <= '9';
}

/* cidr_isblank - white space that cannot belong to an address */

static int
cidr_isblank(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'
           || c == '\f';
}

/* cidr_hexval - value of a hex digit, or -1 */

static int
cidr_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* cidr_quad4 - a dotted quad in one pass: 0 with its 4 bytes in addr,
 * or -1 for anything cidr_parse4 refuses
 *
 * Four parts of 1 to 3 digits, none over 255 nor with a leading zero,
 * three dots, then the end: exactly what cidr_parse4's checks let
 * through, which run only for a text this refuses, to say why.  Every
 * peer a policy sets is parsed: an IPv4 text took ina_cidr_parse 618
 * instructions through the checks' two passes, 399 with this first
 * (callgrind). */

static int
cidr_quad4(const char *s, uint8_t *addr)
{
    unsigned i, val, n;

    for (i = 0; i < 4; i++, s++) {
        if (!cidr_isdigit(*s))
            return -1;
        val = (unsigned) (*s++ - '0');
        for (n = 1; cidr_isdigit(*s); n++) {
            if (val == 0 || n == 3)
                return -1;
            val = val * 10 + (unsigned) (*s++ - '0');
        }
        if (val > 255 || *s != (i < 3 ? '.' : '\0'))
            return -1;
        addr[i] = (uint8_t) val;
    }
    return 0;
}

/* cidr_parse4 - parse a dotted-quad IPv4 address into 4 bytes
 *
 * s is NUL-terminated.  what names the address in messages ("IPv4
 * address", or "embedded IPv4 address" for the tail of an IPv6 one). */

static int
cidr_parse4(const struct cidr_ctx *cx, const char *s, uint8_t *addr,
            const char *what)
{
    char frag[CIDR_QUOTE_LEN];
    const char *p;
    const char *start;
    unsigned nparts = 1;
    unsigned i;
    unsigned val;
    size_t n;

    if (cidr_quad4(s, addr) == 0)
        return 0;
    for (p = s; *p != '\0'; p++) {
        if (*p == '.') {
            nparts++;
        } else if (!cidr_isdigit(*p)) {
            cidr_quote(p, 1, frag);
            return cidr_fail(cx, "bad character '%s' in %s", frag, what);
        }
    }
    if (nparts != 4)
        return cidr_fail(cx, "%s needs 4 parts", what);
    p = s;
    for (i = 0; i < 4; i++) {
        start = p;
        while (cidr_isdigit(*p))
            p++;
        n = (size_t) (p - start);
        if (n == 0)
            return cidr_fail(cx, "%s has an empty part", what);
        if (n > 1 && start[0] == '0')
            return cidr_fail(cx, "%s part \"%.*s\" has a leading zero "
                             "(inet_aton would read it as octal)", what,
                             (int) n, start);
        if (n > 3)
            return cidr_fail(cx, "%s part \"%.*s\" is over 255", what,
                             (int) n, start);
        val = 0;
        for (; start < p; start++)
            val = val * 10 + (unsigned) (*start - '0');
        if (val > 255)
            return cidr_fail(cx, "%s part \"%u\" is over 255", what, val);
        addr[i] = (uint8_t) val;
        if (*p == '.')
            p++;
    }
    return 0;
}

/* cidr_parse6 - parse an IPv6 address (RFC 4291 section 2.2) into 16 bytes
 *
 * s is NUL-terminated.  Groups are 1 to 4 hex digits in either case; one
 * "::" stands for one or more zero groups; the last 32 bits may be written
 * as a dotted quad. */

static int
cidr_parse6(const struct cidr_ctx *cx, const char *s, uint8_t *addr)
{
    uint16_t groups[8];
    uint8_t v4[4];
    char frag[CIDR_QUOTE_LEN];
    const char *p = s;
    const char *start;
    unsigned ngroups = 0;
    unsigned val;
    unsigned i;
    unsigned tail;
    int dcolon = -1;
    int rc;
    int h;

    if (p[0] == ':') {
        if (p[1] != ':')
            return cidr_fail(cx, "IPv6 address starts with a single ':'");
        dcolon = 0;
        p += 2;
    }
    while (*p != '\0') {
        start = p;
        val = 0;
        while ((h = cidr_hexval(*p)) >= 0) {
            val = (val << 4 | (unsigned) h) & 0xfffffu;
            p++;
        }
        if (*p == '.') {
            /* An embedded IPv4 address: it must be the last 32 bits. */
            if (strchr(start, ':') != NULL)
                return cidr_fail(cx, "embedded IPv4 address must come last "
                                 "in an IPv6 address");
            if (ngroups > 6)
                return cidr_fail(cx, "IPv6 address has more than 8 groups");
            if ((rc = cidr_parse4(cx, start, v4, "embedded IPv4 address")))
                return rc;
            groups[ngroups++] = (uint16_t) (v4[0] << 8 | v4[1]);
            groups[ngroups++] = (uint16_t) (v4[2] << 8 | v4[3]);
            break;
        }
        if (p == start) {
            if (*p == ':')
                return cidr_fail(cx, "':::' in IPv6 address");
            cidr_quote(p, 1, frag);
            return cidr_fail(cx, "bad character '%s' in IPv6 address", frag);
        }
        if (p - start > 4)
            return cidr_fail(cx, "IPv6 group \"%.*s\" has more than 4 hex "
                             "digits", (int) (p - start), start);
        if (ngroups == 8)
            return cidr_fail(cx, "IPv6 address has more than 8 groups");
        groups[ngroups++] = (uint16_t) val;
        if (*p == '\0')
            break;
        if (*p != ':') {
            cidr_quote(p, 1, frag);
            return cidr_fail(cx, "bad character '%s' in IPv6 address", frag);
        }
        p++;
        if (*p == ':') {
            if (dcolon >= 0)
                return cidr_fail(cx, "IPv6 address has more than one '::'");
            dcolon = (int) ngroups;
            p++;
        } else if (*p == '\0') {
            return cidr_fail(cx, "IPv6 address ends with a single ':'");
        }
    }

    if (dcolon < 0 && ngroups != 8)
        return cidr_fail(cx, "IPv6 address has %u groups, needs 8 or '::'",
                         ngroups);
    if (dcolon >= 0 && ngroups > 7)
        return cidr_fail(cx, "IPv6 address has 8 groups and a '::'");

    /* Groups before "::" go to the front, the others to the back. */
    memset(addr, 0, 16);
    if (dcolon < 0)
        dcolon = (int) ngroups;
    for (i = 0; i < (unsigned) dcolon; i++) {
        addr[2 * i] = (uint8_t) (groups[i] >> 8);
        addr[2 * i + 1] = (uint8_t) (groups[i] & 0xff);
    }
    tail = ngroups - (unsigned) dcolon;
    for (i = 0; i < tail; i++) {
        addr[16 - 2 * tail + 2 * i] = (uint8_t) (groups[dcolon + i] >> 8);
        addr[16 - 2 * tail + 2 * i + 1] =
            (uint8_t) (groups[dcolon + i] & 0xff);
    }
    return 0;
}

/* cidr_parse_mask - parse the decimal N of "/N", at most max */

static int
cidr_parse_mask(const struct cidr_ctx *cx, const char *s, unsigned max,
                unsigned *plen)
{
    char frag[CIDR_QUOTE_LEN];
    const char *p;
    unsigned val = 0;
    size_t n;

    if (*s == '\0')
        return cidr_fail(cx, "mask missing after '/'");
    n = strlen(s);
    for (p = s; *p != '\0'; p++) {
        if (!cidr_isdigit(*p)) {
            cidr_quote(s, n, frag);
            return cidr_fail(cx, "mask \"%s\" is not a decimal number", frag);
        }
    }
    if (n > 1 && s[0] == '0')
        return cidr_fail(cx, "mask /%s has a leading zero", s);
    if (n > 3)
        return cidr_fail(cx, "mask /%s is longer than /%u", s, max);
    for (p = s; *p != '\0'; p++)
        val = val * 10 + (unsigned) (*p - '0');
    if (val > max)
        return cidr_fail(cx, "mask /%u is longer than /%u", val, max);
    *plen = val;
    return 0;
}

/* cidr_is_mapped - whether 16 bytes are an IPv4-mapped address */

static int
cidr_is_mapped(const uint8_t *a)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                       0xff, 0xff};

    return memcmp(a, prefix, sizeof prefix) == 0;
}

/* ina_cidr_parse - parse an address, a CIDR block or a bare "/mask" */

int
ina_cidr_parse(const char *text, size_t len, struct ina_cidr *out,
               char *errbuf, size_t errlen)
{
    struct cidr_ctx cx;
    struct ina_cidr c;
    char buf[INA_CIDR_TEXT_MAX + 1];
    char frag[CIDR_QUOTE_LEN];
    char *addr;
    char *mask = NULL;
    char *close;
    char *slash;
    unsigned max;
    unsigned plen;
    int v6;
    int rc;

    if (text == NULL) {
        text = "";
        len = 0;
    }
    cx.text = text;
    cx.len = len;
    cx.errbuf = errbuf;
    cx.errlen = errlen;

    if (len == 0)
        return cidr_fail(&cx, "empty");
    if (len > INA_CIDR_TEXT_MAX)
        return cidr_fail(&cx, "%zu characters, longer than %d", len,
                         INA_CIDR_TEXT_MAX);
    if (memchr(text, '\0', len) != NULL)
        return cidr_fail(&cx, "contains a NUL byte");
    if (cidr_isblank(text[0]))
        return cidr_fail(&cx, "leading blank");
    if (cidr_isblank(text[len - 1]))
        return cidr_fail(&cx, "trailing blank");
    memcpy(buf, text, len);
    buf[len] = '\0';
    memset(&c, 0, sizeof c);

    /* A bare "/N": a mask for the current connection's address. */
    if (buf[0] == '/') {
        if ((rc = cidr_parse_mask(&cx, buf + 1, 128, &plen)) != 0)
            return rc;
        c.family = 0;
        c.plen = (uint8_t) plen;
        c.has_mask = 1;
        *out = c;
        return 0;
    }

    if (buf[0] == '[') {
        /* "[v6]", "[v6]/N" or "[v6/N]". */
        if ((close = strchr(buf, ']')) == NULL)
            return cidr_fail(&cx, "'[' without ']'");
        *close = '\0';
        addr = buf + 1;
        if (close[1] == '/') {
            mask = close + 2;
        } else if (close[1] != '\0') {
            cidr_quote(close + 1, strlen(close + 1), frag);
            return cidr_fail(&cx, "\"%s\" after ']'", frag);
        }
        if ((slash = strchr(addr, '/')) != NULL) {
            if (mask != NULL)
                return cidr_fail(&cx, "mask both inside and outside "
                                 "the brackets");
            *slash = '\0';
            mask = slash + 1;
        }
        if (*addr == '\0')
            return cidr_fail(&cx, "no address inside the brackets");
        if (strchr(addr, ':') == NULL)
            return cidr_fail(&cx, "only an IPv6 address goes inside "
                             "brackets");
        v6 = 1;
    } else {
        if (strchr(buf, ']') != NULL)
            return cidr_fail(&cx, "']' without '['");
        addr = buf;
        if ((slash = strchr(buf, '/')) != NULL) {
            *slash = '\0';
            mask = slash + 1;
        }
        v6 = strchr(addr, ':') != NULL;
        if (!v6 && !cidr_isdigit(addr[0]))
            return cidr_fail(&cx, "not an IPv4 or IPv6 address");
    }

    if (v6) {
        if ((rc = cidr_parse6(&cx, addr, c.addr)) != 0)
            return rc;
        c.family = 6;
    } else {
        if ((rc = cidr_parse4(&cx, addr, c.addr, "IPv4 address")) != 0)
            return rc;
        c.family = 4;
    }
    max = cidr_maxlen(c.family);
    if (mask != NULL) {
        if ((rc = cidr_parse_mask(&cx, mask, max, &plen)) != 0)
            return rc;
        c.has_mask = 1;
    } else {
        plen = max;
    }

    /* ::ffff:a.b.c.d is the IPv4 address a.b.c.d. */
    if (c.family == 6 && cidr_is_mapped(c.addr)) {
        if (plen < 96)
            return cidr_fail(&cx, "mask /%u on an IPv4-mapped address is "
                             "shorter than /96", plen);
        memmove(c.addr, c.addr + 12, 4);
        memset(c.addr + 4, 0, sizeof c.addr - 4);
        c.family = 4;
        plen -= 96;
    }
    c.plen = (uint8_t) plen;
    cidr_mask(c.addr, cidr_addrlen(c.family), plen);
    *out = c;
    return 0;
}

/* ina_cidr_resolve - apply a bare "/mask" to the current connection */

int
ina_cidr_resolve(const struct ina_cidr *rel, const struct ina_cidr *peer,
                 struct ina_cidr *out)
{
    struct ina_cidr r;

    if (rel->family == 4 || rel->family == 6) {
        *out = *rel;
        return 0;
    }
    if (rel->family != 0)
        return INA_EBADCIDR;
    if (peer == NULL || (peer->family != 4 && peer->family != 6))
        return INA_ENOADDR;
    if (rel->plen > cidr_maxlen(peer->family))
        return INA_EBADCIDR;
    r = *peer;
    r.plen = rel->plen;
    r.has_mask = 1;
    cidr_mask(r.addr, cidr_addrlen(r.family), r.plen);
    *out = r;
    return 0;
}

/* ina_cidr_host - make a host block (/32 or /128) of an address
 *
 * The result is what parsing the bare address gives: no explicit mask.
 * A bare mask (family 0) has no address to make a host of and is copied
 * unchanged. */

void
ina_cidr_host(const struct ina_cidr *addr, struct ina_cidr *out)
{
    struct ina_cidr h = *addr;

    if (h.family == 4 || h.family == 6) {
        h.plen = (uint8_t) cidr_maxlen(h.family);
        h.has_mask = 0;
    }
    *out = h;
}

/* cidr_format6 - RFC 5952 text of an IPv6 address
 *
 * Lowercase hex without leading zeros; the longest run of two or more
 * zero groups (the first of equal runs) becomes "::"; an IPv4-mapped
 * address is written in mixed notation (RFC 5952 section 5).  out must
 * hold 40 bytes. */

static void
cidr_format6(const uint8_t *a, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned w[8];
    unsigned i;
    unsigned run = 0;
    unsigned best = 0;
    unsigned best_len = 0;
    int shift;
    int started;
    char *p = out;

    if (cidr_is_mapped(a)) {
        snprintf(out, 40, "::ffff:%u.%u.%u.%u", a[12], a[13], a[14], a[15]);
        return;
    }
    for (i = 0; i < 8; i++) {
        w[i] = (unsigned) a[2 * i] << 8 | a[2 * i + 1];
        run = w[i] == 0 ? run + 1 : 0;
        if (run > best_len) {
            best_len = run;
            best = i + 1 - run;
        }
    }
    if (best_len < 2)
        best_len = 0;

    for (i = 0; i < 8; i++) {
        if (best_len > 0 && i >= best && i < best + best_len) {
            if (i == best)
                *p++ = ':';
            continue;
        }
        if (i != 0)
            *p++ = ':';
        started = 0;
        for (shift = 12; shift >= 0; shift -= 4) {
            if (started || (w[i] >> shift & 0xf) != 0 || shift == 0) {
                *p++ = hex[w[i] >> shift & 0xf];
                started = 1;
            }
        }
    }
    if (best_len > 0 && best + best_len == 8)
        *p++ = ':';
    *p = '\0';
}

/* ina_cidr_format - write a block as text */

char *
ina_cidr_format(const struct ina_cidr *c, char *buf, size_t len)
{
    char a6[40];

    if (len == 0)
        return buf;
    switch (c->family) {
    case 0:
        snprintf(buf, len, "/%u", c->plen);
        break;
    case 4:
        snprintf(buf, len, "%u.%u.%u.%u/%u", c->addr[0], c->addr[1],
                 c->addr[2], c->addr[3], c->plen);
        break;
    case 6:
        cidr_format6(c->addr, a6);
        snprintf(buf, len, "%s/%u", a6, c->plen);
        break;
    default:
        snprintf(buf, len, "(family %u)/%u", c->family, c->plen);
        break;
    }
    return buf;
}

/* cidr_mask - clear every bit of addr past plen */

void
cidr_mask(uint8_t *addr, unsigned alen, unsigned plen)
{
    unsigned i;

    /* The bytes before plen / 8 are all inside the prefix. */
    for (i = plen / 8; i < alen; i++) {
        if (plen <= 8 * i)
            addr[i] = 0;
        else
            addr[i] &= (uint8_t) (0xff00u >> (plen - 8 * i));
    }
}

/* cidr_last - set every bit of addr past plen (last address of a block) */

void
cidr_last(uint8_t *addr, unsigned alen, unsigned plen)
{
    unsigned i;

    for (i = plen / 8; i < alen; i++) {
        if (plen <= 8 * i)
            addr[i] = 0xff;
        else
            addr[i] |= (uint8_t) (0xffu >> (plen - 8 * i));
    }
}
