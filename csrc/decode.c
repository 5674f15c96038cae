/* Link layer -> IPv4/IPv6 -> TCP decoding of one captured frame into a Segment.
 * Bounds are checked against the captured length at every step: a short or
 * malformed frame is counted, never read past. */
#include <string.h>
#include "decode.h"

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* RFC 1071 one's-complement sum. */
static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc) {
    while (n > 1) { acc += be16(p); p += 2; n -= 2; }
    if (n) acc += (uint32_t)p[0] << 8;
    return acc;
}
static uint16_t fold(uint32_t acc) {
    while (acc >> 16) acc = (acc & 0xFFFF) + (acc >> 16);
    return (uint16_t)acc;
}

static void parse_options(const uint8_t *o, size_t n, Segment *s) {
    size_t i = 0;
    while (i < n) {
        uint8_t kind = o[i];
        if (kind == 0) break;              /* end of option list */
        if (kind == 1) { i++; continue; }  /* NOP */
        if (i + 1 >= n) break;
        uint8_t len = o[i + 1];
        if (len < 2 || i + len > n) break; /* malformed: stop, keep what we have */
        switch (kind) {
        case 2: if (len == 4) s->mss = be16(o + i + 2); break;
        case 3: if (len == 3) s->wscale = o[i + 2]; break;
        case 4: s->sack_ok = 1; break;
        case 8: if (len == 10) s->ts_present = 1; break;
        }
        i += len;
    }
}

/* TCP over IP: `ip_payload` is the TCP header onward; `tcp_len` its length per the IP
 * header; `cap` how much of it was captured. */
static int decode_tcp(const uint8_t *t, uint32_t tcp_len, size_t cap, Segment *s,
                      const uint8_t *pseudo_src, const uint8_t *pseudo_dst, int alen,
                      int verify) {
    if (cap < 20 || tcp_len < 20) return DEC_SHORT;
    uint32_t hlen = (uint32_t)(t[12] >> 4) * 4;
    if (hlen < 20 || hlen > tcp_len) return DEC_BAD_TCP;
    s->sport = be16(t);
    s->dport = be16(t + 2);
    s->seq = be32(t + 4);
    s->ack = be32(t + 8);
    s->flags = t[13];
    s->win = be16(t + 14);
    s->payload_len = tcp_len - hlen;
    s->mss = -1;
    s->wscale = -1;
    s->sack_ok = s->ts_present = 0;
    s->csum_bad = 0;
    s->payload_cut = cap < tcp_len; /* snap length: Zeek then never sees this data */
    if ((s->flags & F_SYN) && hlen > 20) {
        size_t avail = cap < hlen ? cap : hlen;
        if (avail > 20) parse_options(t + 20, avail - 20, s);
    }
    if (verify && cap >= tcp_len) {
        uint32_t acc = sum16(pseudo_src, (size_t)alen, 0);
        acc = sum16(pseudo_dst, (size_t)alen, acc);
        acc += 6 + tcp_len; /* protocol and TCP length */
        acc = sum16(t, tcp_len, acc);
        s->csum_bad = fold(acc) != 0xFFFF;
    }
    return DEC_TCP;
}

static int decode_by_version(const uint8_t *p, size_t cap, Segment *s, int verify);

/* Tunnels over UDP whose inner packet is decoded like any other: GTP-U (3GPP TS 29.281,
 * port 2152) and Teredo (RFC 4380, port 3544). `u` is the UDP header; only the first
 * fragment of a fragmented datagram gets here, and the inner TCP header is in it. */
enum { PORT_GTP_U = 2152, PORT_TEREDO = 3544, MAX_TUNNEL_DEPTH = 2 };
static int tunnel_depth; /* nesting now; decoding runs under the GIL, one frame at a time */

static int decode_udp_tunnel(const uint8_t *u, size_t cap, Segment *s, int verify) {
    if (cap < 8) return DEC_NOT_TCP;
    uint16_t sport = be16(u), dport = be16(u + 2);
    const uint8_t *p = u + 8;
    size_t n = cap - 8;
    if (sport == PORT_GTP_U || dport == PORT_GTP_U) {
        /* version 1, protocol type GTP, message G-PDU (255) */
        if (n < 8 || (p[0] >> 5) != 1 || !(p[0] & 0x10) || p[1] != 0xFF) return DEC_NOT_TCP;
        size_t off = 8;
        if (p[0] & 0x07) { /* sequence number, N-PDU number, next extension type */
            if (n < 12) return DEC_NOT_TCP;
            uint8_t next = p[11];
            off = 12;
            while (next) { /* extension headers: length in 4-byte units, next type last */
                if (n < off + 1 || p[off] == 0) return DEC_NOT_TCP;
                size_t len = (size_t)p[off] * 4;
                if (n < off + len) return DEC_NOT_TCP;
                next = p[off + len - 1];
                off += len;
            }
        }
        p += off;
        n -= off;
    } else if (sport == PORT_TEREDO || dport == PORT_TEREDO) {
        if (n >= 4 && p[0] == 0 && p[1] == 1) { /* authentication indicator */
            size_t len = 4 + (size_t)p[2] + p[3] + 8 + 1;
            if (n < len) return DEC_NOT_TCP;
            p += len;
            n -= len;
        }
        if (n >= 8 && p[0] == 0 && p[1] == 0) { /* origin indication */
            p += 8;
            n -= 8;
        }
        if (n < 40 || (p[0] >> 4) != 6) return DEC_NOT_TCP; /* Teredo carries IPv6 only */
    } else {
        /* Teredo relays use other ports: like Zeek's protocol detection, take a datagram
         * that is exactly one IPv6 packet (length fields agree) as Teredo. */
        uint16_t udp_len = be16(u + 4);
        if (udp_len < 48 || n < 40 || (p[0] >> 4) != 6 ||
            (size_t)be16(p + 4) + 40 != (size_t)udp_len - 8)
            return DEC_NOT_TCP;
    }
    if (tunnel_depth >= MAX_TUNNEL_DEPTH) return DEC_NOT_TCP;
    tunnel_depth++;
    int r = decode_by_version(p, n, s, verify);
    tunnel_depth--;
    return r == DEC_NOT_IP ? DEC_NOT_TCP : r;
}

static int decode_ipv4(const uint8_t *p, size_t cap, Segment *s, int verify) {
    if (cap < 20) return DEC_SHORT;
    if ((p[0] >> 4) != 4) return DEC_NOT_IP;
    uint32_t ihl = (uint32_t)(p[0] & 0x0F) * 4;
    uint32_t total = be16(p + 2);
    if (ihl < 20 || cap < ihl) return DEC_SHORT;
    /* TSO-captured frames carry total length 0: fall back to what was captured. */
    if (total == 0) total = (uint32_t)cap;
    if (total < ihl) return DEC_SHORT;
    uint16_t frag = be16(p + 6);
    if (p[9] == 17 && !(frag & 0x1FFF)) /* UDP, first (or only) fragment */
        return decode_udp_tunnel(p + ihl, cap - ihl, s, verify);
    if (frag & 0x3FFF) return DEC_FRAGMENT; /* MF set or offset != 0: not reassembled */
    if (p[9] != 6) return DEC_NOT_TCP;
    s->family = 4;
    memset(s->src, 0, 16);
    memset(s->dst, 0, 16);
    memcpy(s->src, p + 12, 4);
    memcpy(s->dst, p + 16, 4);
    s->ip_len = total;
    size_t tcap = cap - ihl;
    return decode_tcp(p + ihl, total - ihl, tcap, s, p + 12, p + 16, 4, verify);
}

static int decode_ipv6(const uint8_t *p, size_t cap, Segment *s, int verify) {
    if (cap < 40) return DEC_SHORT;
    if ((p[0] >> 4) != 6) return DEC_NOT_IP;
    uint32_t plen = be16(p + 4);
    if (plen == 0) plen = (uint32_t)(cap - 40); /* jumbogram or TSO: use the capture */
    uint8_t nh = p[6];
    size_t off = 40;
    uint32_t end = 40 + plen;
    /* Skip extension headers (RFC 8200 section 4). */
    for (int guard = 0; guard < 16; guard++) {
        if (nh == 6) break;
        if (nh == 17) { /* UDP: a tunnel, or not TCP */
            if (off > cap) return DEC_SHORT;
            return decode_udp_tunnel(p + off, cap - off, s, verify);
        }
        if (nh == 0 || nh == 43 || nh == 60 || nh == 135 || nh == 139 || nh == 140) {
            if (cap < off + 8) return DEC_SHORT;
            nh = p[off];
            off += ((size_t)p[off + 1] + 1) * 8;
        } else if (nh == 44) { /* fragment header */
            if (cap < off + 8) return DEC_SHORT;
            uint16_t fo = be16(p + off + 2);
            if ((fo & 0xFFF9) != 0) return DEC_FRAGMENT;
            nh = p[off];
            off += 8;
        } else if (nh == 51) { /* AH: length in 4-byte units, minus 2 */
            if (cap < off + 8) return DEC_SHORT;
            nh = p[off];
            off += ((size_t)p[off + 1] + 2) * 4;
        } else {
            return DEC_NOT_TCP;
        }
    }
    if (nh != 6) return DEC_NOT_TCP;
    if (off > end || off > cap) return DEC_SHORT;
    s->family = 6;
    memcpy(s->src, p + 8, 16);
    memcpy(s->dst, p + 24, 16);
    s->ip_len = end;
    return decode_tcp(p + off, end - (uint32_t)off, cap - off, s, p + 8, p + 24, 16, verify);
}

static int decode_by_version(const uint8_t *p, size_t cap, Segment *s, int verify) {
    if (cap < 1) return DEC_SHORT;
    switch (p[0] >> 4) {
    case 4: return decode_ipv4(p, cap, s, verify);
    case 6: return decode_ipv6(p, cap, s, verify);
    default: return DEC_NOT_IP;
    }
}

static int decode_ethertype(uint16_t type, const uint8_t *p, size_t cap, Segment *s,
                            int verify) {
    /* VLAN tags (802.1Q, 802.1ad QinQ, old 0x9100), MPLS and PPPoE sessions are
     * peeled off until an IP payload or something else shows up. */
    for (int guard = 0; guard < 16; guard++) {
        switch (type) {
        case 0x0800: return decode_ipv4(p, cap, s, verify);
        case 0x86DD: return decode_ipv6(p, cap, s, verify);
        case 0x8100: case 0x88A8: case 0x9100:
            if (cap < 4) return DEC_SHORT;
            type = be16(p + 2);
            p += 4; cap -= 4;
            break;
        case 0x8847: case 0x8848: /* MPLS: skip labels to bottom of stack */
            for (;;) {
                if (cap < 4) return DEC_SHORT;
                int bos = p[2] & 1;
                p += 4; cap -= 4;
                if (bos) break;
            }
            return decode_by_version(p, cap, s, verify);
        case 0x8864: /* PPPoE session: 6-byte header, 2-byte PPP protocol */
            if (cap < 8) return DEC_SHORT;
            {
                uint16_t ppp = be16(p + 6);
                p += 8; cap -= 8;
                if (ppp == 0x0021) return decode_ipv4(p, cap, s, verify);
                if (ppp == 0x0057) return decode_ipv6(p, cap, s, verify);
                return DEC_NOT_IP;
            }
        default:
            return DEC_NOT_IP;
        }
    }
    return DEC_NOT_IP;
}

int link_supported(uint32_t lt) {
    switch (lt) {
    case LT_NULL: case LT_ETHERNET: case LT_RAW: case LT_RAW_12: case LT_RAW_14:
    case LT_LOOP: case LT_SLL: case LT_IPV4: case LT_IPV6: case LT_SLL2:
        return 1;
    default:
        return 0;
    }
}

int decode_frame(uint32_t linktype, const uint8_t *p, size_t cap, Segment *s, int verify) {
    switch (linktype) {
    case LT_ETHERNET:
        if (cap < 14) return DEC_SHORT;
        return decode_ethertype(be16(p + 12), p + 14, cap - 14, s, verify);
    case LT_SLL: /* Linux cooked v1: protocol at offset 14 of a 16-byte header */
        if (cap < 16) return DEC_SHORT;
        return decode_ethertype(be16(p + 14), p + 16, cap - 16, s, verify);
    case LT_SLL2: /* Linux cooked v2: protocol at offset 0 of a 20-byte header */
        if (cap < 20) return DEC_SHORT;
        return decode_ethertype(be16(p), p + 20, cap - 20, s, verify);
    case LT_RAW: case LT_RAW_12: case LT_RAW_14:
        return decode_by_version(p, cap, s, verify);
    case LT_IPV4:
        return decode_ipv4(p, cap, s, verify);
    case LT_IPV6:
        return decode_ipv6(p, cap, s, verify);
    case LT_NULL: case LT_LOOP:
        /* 4-byte address family: host order for NULL (either order is possible), network
         * order for LOOP. AF_INET is 2 everywhere; AF_INET6 is 10, 24, 28 or 30. The IP
         * version nibble settles it. */
        if (cap < 4) return DEC_SHORT;
        return decode_by_version(p + 4, cap - 4, s, verify);
    default:
        return DEC_UNSUPPORTED_LINK;
    }
}
