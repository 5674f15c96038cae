/* Record framing for classic pcap and pcapng: pure functions over a byte buffer.
 * Formats: https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap and
 * draft-ietf-opsawg-pcapng. Nothing here reads a file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "framing.h"
#include "decode.h"

/* A record may not claim more bytes than libpcap's max_snaplen_for_dlt() allows for its
 * link type (MAXIMUM_SNAPLEN, 256 KiB, for every type we decode; libpcap only allows more
 * for D-Bus, EBHSCR and USBPcap). Whatever the file header's snaplen says: a header with
 * snaplen 0xFFFFFFFF must not let one corrupt length hold the rest of the file. */
#define MAX_CAPLEN 262144u
/* libpcap's pcapng reader refuses blocks over 16 MiB (INITIAL_MAX_BLOCKSIZE) unless an
 * interface's link type needs more; ours never do. */
#define MAX_PCAPNG_BLOCK (16u << 20)

static inline uint32_t rd32(const Framer *f, const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return f->swapped ? __builtin_bswap32(v) : v;
}
static inline uint16_t rd16(const Framer *f, const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return f->swapped ? __builtin_bswap16(v) : v;
}

void framer_init(Framer *f) { memset(f, 0, sizeof *f); }
void framer_free(Framer *f) { free(f->ifaces); f->ifaces = NULL; }

static uint32_t max_caplen(uint32_t linktype) {
    (void)linktype; /* every supported link type has libpcap's default maximum */
    return MAX_CAPLEN;
}

static long fail(Framer *f, const char *msg, uint64_t at) {
    snprintf(f->err, sizeof f->err, "%s at byte %llu (after packet %llu)", msg,
             (unsigned long long)at, (unsigned long long)f->packets);
    return -1;
}

int64_t framer_time(Framer *f, int64_t ts, uint64_t pkt_no) {
    if (ts >= TS_MIN && ts <= TS_MAX) return ts;
    if (!f->ts_clamped++) f->ts_clamped_first = pkt_no;
    return ts_clamp(ts);
}

/* Ticks to nanoseconds, saturating at INT64_MAX (a corrupt time must not wrap). */
static inline int64_t to_ns(uint64_t t, uint64_t units) {
    uint64_t sec = t / units, rem = t % units;
    if (sec >= (uint64_t)INT64_MAX / 1000000000ull) return INT64_MAX;
    /* rem < units <= 2^63: rem * 1e9 may not fit in 64 bits, so scale in 128 */
    return (int64_t)(sec * 1000000000ull +
                     (uint64_t)((unsigned __int128)rem * 1000000000ull / units));
}

/* A pcapng time: ticks plus the interface's if_tsoffset, saturating (never wrapping). */
static inline int64_t ng_time(const Iface *i, uint64_t ticks) {
    int64_t ns = to_ns(ticks, i->units), sum;
    if (__builtin_add_overflow(ns, i->offset_s * 1000000000ll, &sum))
        return i->offset_s < 0 ? INT64_MIN : INT64_MAX;
    return sum;
}

/* ---- classic pcap ---------------------------------------------------------------- */

static long pcap_header(Framer *f, const uint8_t *b, size_t len) {
    if (len < 24) return 0;
    uint32_t magic;
    memcpy(&magic, b, 4);
    switch (magic) {
    case 0xA1B2C3D4: f->swapped = 0; f->units = 1000000; break;
    case 0xD4C3B2A1: f->swapped = 1; f->units = 1000000; break;
    case 0xA1B23C4D: f->swapped = 0; f->units = 1000000000; break;
    case 0x4D3CB2A1: f->swapped = 1; f->units = 1000000000; break;
    default: return fail(f, "not a pcap file header", f->offset);
    }
    f->snaplen = rd32(f, b + 16);
    f->linktype = rd32(f, b + 20) & 0x0FFFFFFF; /* upper bits: FCS length flags */
    if (!link_supported(f->linktype)) {
        char msg[64];
        snprintf(msg, sizeof msg, "unsupported link type %u in the file header", f->linktype);
        return fail(f, msg, f->offset + 20);
    }
    f->header_done = 1;
    return 24;
}

static long pcap_records(Framer *f, const uint8_t *b, size_t len, frame_fn fn, void *ctx) {
    size_t pos = 0;
    uint32_t limit = max_caplen(f->linktype);
    while (len - pos >= 16) {
        const uint8_t *h = b + pos;
        uint32_t sec = rd32(f, h), frac = rd32(f, h + 4);
        uint32_t incl = rd32(f, h + 8), orig = rd32(f, h + 12);
        if (incl > limit) {
            char msg[96];
            snprintf(msg, sizeof msg, "corrupt record: captured length %u exceeds %u", incl,
                     limit); /* libpcap: "invalid packet capture length" */
            return (long)pos ? (long)pos : fail(f, msg, f->offset + pos);
        }
        if (len - pos - 16 < incl) break;
        int64_t ts = (int64_t)sec * 1000000000ll +
                     (f->units == 1000000 ? (int64_t)frac * 1000 : (int64_t)frac);
        f->packets++;
        fn(ctx, f->linktype, ts, h + 16, incl, orig);
        pos += 16 + (size_t)incl;
        if (f->stop && *f->stop) break; /* read -c: enough packets */
    }
    return (long)pos;
}

/* ---- pcapng ----------------------------------------------------------------------- */

static int add_iface(Framer *f, const uint8_t *body, size_t blen) {
    if (blen < 8) return -1;
    if (f->n_ifaces == f->cap_ifaces) {
        uint32_t cap = f->cap_ifaces ? f->cap_ifaces * 2 : 4;
        Iface *n = realloc(f->ifaces, cap * sizeof *n);
        if (!n) return -1;
        f->ifaces = n;
        f->cap_ifaces = cap;
    }
    Iface *i = &f->ifaces[f->n_ifaces++];
    i->linktype = rd16(f, body);
    i->snaplen = rd32(f, body + 4);
    i->units = 1000000;
    i->offset_s = 0;
    size_t p = 8;
    int saw_tsresol = 0, saw_tsoffset = 0; /* each may appear once: the first counts, as
                                            * in Wireshark (libpcap refuses the file) */
    while (p + 4 <= blen) { /* options: code, length, value padded to 4 */
        uint16_t code = rd16(f, body + p), olen = rd16(f, body + p + 2);
        if (code == 0) break;
        if (p + 4 + olen > blen) break;
        const uint8_t *v = body + p + 4;
        if (code == 9 && olen >= 1 && !saw_tsresol++) { /* if_tsresol */
            uint8_t r = v[0];
            uint64_t units = 1;
            if (r & 0x80) {
                if ((r & 0x7F) < 64) units = 1ull << (r & 0x7F);
            } else {
                for (int k = 0; k < (r & 0x7F) && k < 19; k++) units *= 10;
            }
            i->units = units ? units : 1000000;
        } else if (code == 14 && olen == 8 && !saw_tsoffset++) { /* if_tsoffset */
            uint64_t off;
            memcpy(&off, v, 8);
            if (f->swapped) off = __builtin_bswap64(off);
            /* seconds whose nanoseconds fit in an int64; ng_time saturates the sum */
            int64_t lim = INT64_MAX / 1000000000ll;
            i->offset_s = (int64_t)off > lim ? lim : (int64_t)off < -lim ? -lim : (int64_t)off;
        }
        p += 4 + (((size_t)olen + 3) & ~(size_t)3);
    }
    return 0;
}

static long pcapng_blocks(Framer *f, const uint8_t *b, size_t len, frame_fn fn, void *ctx) {
    size_t pos = 0;
    while (len - pos >= 12) {
        const uint8_t *h = b + pos;
        uint32_t raw_type;
        memcpy(&raw_type, h, 4);
        if (raw_type == 0x0A0D0D0A) { /* Section Header Block: byte order may change */
            if (len - pos < 12) break;
            uint32_t bom;
            memcpy(&bom, h + 8, 4);
            if (bom == 0x1A2B3C4D) f->swapped = 0;
            else if (bom == 0x4D3C2B1A) f->swapped = 1;
            else return pos ? (long)pos : fail(f, "corrupt pcapng section header", f->offset + pos);
            f->n_ifaces = 0; /* interface ids restart in each section */
        }
        uint32_t type = rd32(f, h), blen = rd32(f, h + 4);
        if (blen < 12 || (blen & 3) || blen > MAX_PCAPNG_BLOCK) {
            char msg[96];
            snprintf(msg, sizeof msg, "corrupt pcapng block: length %u", blen);
            return pos ? (long)pos : fail(f, msg, f->offset + pos);
        }
        if (type == 6 && len - pos >= 28 && rd32(f, h + 20) > MAX_CAPLEN) {
            /* checked before the whole block is buffered: a corrupt length is an error
             * here, not a wait for up to MAX_PCAPNG_BLOCK more bytes */
            char msg[96];
            snprintf(msg, sizeof msg, "corrupt pcapng packet block: captured length %u exceeds %u",
                     rd32(f, h + 20), MAX_CAPLEN);
            return pos ? (long)pos : fail(f, msg, f->offset + pos);
        }
        if (len - pos < blen) break;
        if (rd32(f, h + blen - 4) != blen)
            return pos ? (long)pos : fail(f, "corrupt pcapng block: trailing length mismatch",
                                          f->offset + pos);
        const uint8_t *body = h + 8;
        size_t bodylen = blen - 12;
        if (type == 1) {
            /* an interface with an unsupported link type is only an error once a
             * packet on it shows up */
            if (add_iface(f, body, bodylen) < 0)
                return pos ? (long)pos : fail(f, "corrupt pcapng interface block", f->offset + pos);
        } else if (type == 6 || type == 2) { /* Enhanced / obsolete Packet Block */
            if (bodylen < 20)
                return pos ? (long)pos : fail(f, "corrupt pcapng packet block", f->offset + pos);
            uint32_t ifid = type == 6 ? rd32(f, body) : rd16(f, body);
            uint64_t ts = (uint64_t)rd32(f, body + 4) << 32 | rd32(f, body + 8);
            uint32_t cap = rd32(f, body + 12), orig = rd32(f, body + 16);
            if (ifid >= f->n_ifaces) {
                char msg[96];
                snprintf(msg, sizeof msg, "packet block names unknown interface %u", ifid);
                return pos ? (long)pos : fail(f, msg, f->offset + pos);
            }
            if (cap > bodylen - 20)
                return pos ? (long)pos : fail(f, "corrupt pcapng packet block: captured length",
                                              f->offset + pos);
            Iface *i = &f->ifaces[ifid];
            if (!link_supported(i->linktype)) {
                char msg[96];
                snprintf(msg, sizeof msg, "unsupported link type %u (interface %u)",
                         i->linktype, ifid);
                return pos ? (long)pos : fail(f, msg, f->offset + pos);
            }
            f->packets++;
            fn(ctx, i->linktype, framer_time(f, ng_time(i, ts), f->packets), body + 20, cap,
               orig);
        } else if (type == 3) { /* Simple Packet Block: interface 0, no timestamp */
            if (bodylen < 4 || f->n_ifaces == 0)
                return pos ? (long)pos : fail(f, "corrupt pcapng simple packet block",
                                              f->offset + pos);
            if (!link_supported(f->ifaces[0].linktype)) {
                char msg[96];
                snprintf(msg, sizeof msg, "unsupported link type %u (interface 0)",
                         f->ifaces[0].linktype);
                return pos ? (long)pos : fail(f, msg, f->offset + pos);
            }
            uint32_t orig = rd32(f, body);
            uint32_t cap = orig;
            if (f->ifaces[0].snaplen && cap > f->ifaces[0].snaplen) cap = f->ifaces[0].snaplen;
            if (cap > bodylen - 4) cap = (uint32_t)(bodylen - 4);
            f->packets++;
            fn(ctx, f->ifaces[0].linktype, 0, body + 4, cap, orig);
        }
        pos += blen;
        if (f->stop && *f->stop) break; /* read -c: enough packets */
    }
    return (long)pos;
}

long framer_feed(Framer *f, const uint8_t *buf, size_t len, frame_fn fn, void *ctx) {
    long used = 0;
    if (f->stop && *f->stop) return 0; /* read -c: nothing more is read */
    if (!f->header_done) {
        if (len < 4) return 0;
        uint32_t magic;
        memcpy(&magic, buf, 4);
        if (magic == 0x0A0D0D0A) {
            f->format = FMT_PCAPNG;
            f->header_done = 1;
        } else {
            f->format = FMT_PCAP;
            used = pcap_header(f, buf, len);
            if (used <= 0) return used;
            f->offset += (uint64_t)used; /* record offsets count from the file start */
        }
    }
    long n = f->format == FMT_PCAP
                 ? pcap_records(f, buf + used, len - (size_t)used, fn, ctx)
                 : pcapng_blocks(f, buf + used, len - (size_t)used, fn, ctx);
    if (n < 0) return used ? used : -1;
    f->offset += (uint64_t)n;
    return used + n;
}
