/* Zeek's view of a TCP connection, re-implemented from Zeek's own code so that
 * conn_state, history, orig/resp bytes and packets come out as Zeek writes them:
 *   src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc  (Process, Update*State,
 *       update_history, init_endpoint, init_peer, update_last_seq, IsReuse, timers)
 *   src/packet_analysis/protocol/tcp/TCP.cc                 (WantConnection)
 *   src/analyzer/protocol/tcp/TCP_Endpoint.cc               (SetState, Size, CheckHistory)
 *   scripts/base/protocols/conn/main.zeek                   (conn_state)
 * Function names below follow Zeek's so the two can be read side by side. */
#include <stdlib.h>
#include <string.h>
#include "zeek.h"

#define NS 1000000000ll
#define TOO_LARGE_SEQ_DELTA 1048576
#define HIST_MAX 4000

enum { HIST_SYN = 0x1, HIST_FIN = 0x2, HIST_RST = 0x4, HIST_FIN_RST = 0x8, HIST_DATA = 0x10,
       HIST_ACK = 0x20, HIST_MULTI = 0x40 };

static inline int32_t seq_delta(uint32_t a, uint32_t b) { return (int32_t)(a - b); }
static inline int is_orig(const Conn *c, int side) { return side == c->orig; }
static inline char lower(char ch) { return (ch >= 'A' && ch <= 'Z') ? (char)(ch | 0x20) : ch; }

/* ---- history --------------------------------------------------------------------------- */

void hist_push(Conn *c, char ch) {
    if (c->hist_len >= HIST_MAX) return;
    if (c->hist_len + 2 > c->hist_cap) {
        uint16_t cap = (uint16_t)(c->hist_cap * 2);
        char *n;
        if (!c->hist_heap) {
            n = malloc(cap);
            if (!n) return;
            memcpy(n, c->hist_inline, c->hist_len);
        } else {
            n = realloc(c->hist_heap, cap);
            if (!n) return;
        }
        c->hist_heap = n;
        c->hist_cap = cap;
    }
    char *h = conn_hist(c);
    h[c->hist_len++] = ch;
    h[c->hist_len] = 0;
}

static void add_history(Conn *c, int side, char code) {
    hist_push(c, is_orig(c, side) ? code : lower(code));
}

/* Session::CheckHistory: the once-only bits are kept per role and are not swapped by a
 * flip (Zeek's Connection::FlipRoles leaves hist_seen alone). True if seen before. */
static int check_history(Conn *c, int side, uint32_t mask, char code) {
    if (!is_orig(c, side)) mask <<= 16;
    if (c->hist_seen & mask) return 1;
    c->hist_seen |= mask;
    add_history(c, side, code);
    return 0;
}

/* Connection::ScaledHistoryEntry: the letter at the 1st, 10th, 100th ... time. */
static void scaled_history(Conn *c, int side, char code, uint32_t *cnt, uint32_t *thresh) {
    if (*thresh == 0) *thresh = 1;
    if (++*cnt == *thresh) {
        add_history(c, side, code);
        if (*thresh <= UINT32_MAX / 10) *thresh *= 10;
    }
}

static void flip_roles(Conn *c) {
    c->orig ^= 1;
    c->flipped = 1;
    hist_push(c, '^');
}

static void update_history(Conn *c, int side, const Segment *s, uint64_t rel_seq) {
    Side *e = &c->s[side];
    int syn = !!(s->flags & F_SYN), fin = !!(s->flags & F_FIN), rst = !!(s->flags & F_RST);
    int bits = syn + fin + rst;
    if (bits > 1) {
        if (fin && rst) check_history(c, side, HIST_FIN_RST, 'I');
        else check_history(c, side, HIST_MULTI, 'Q');
    } else if (bits == 1) {
        if (syn) {
            char code = (s->flags & F_ACK) ? 'H' : 'S';
            if (check_history(c, side, HIST_SYN, code) && rel_seq != e->hist_last_syn)
                add_history(c, side, code);
            e->hist_last_syn = rel_seq;
        }
        if (fin) {
            if (check_history(c, side, HIST_FIN, 'F') &&
                rel_seq + s->payload_len != e->hist_last_fin)
                add_history(c, side, 'F');
            e->hist_last_fin = rel_seq + s->payload_len;
        }
        if (rst) {
            if (check_history(c, side, HIST_RST, 'R') && rel_seq != e->hist_last_rst)
                add_history(c, side, 'R');
            e->hist_last_rst = rel_seq;
        }
    } else {
        if (s->payload_len) check_history(c, side, HIST_DATA, 'D');
        else if (s->flags & F_ACK) check_history(c, side, HIST_ACK, 'A');
        /* Deliberate difference: Zeek writes no letter for a segment without SYN, FIN,
         * RST, ACK or data (nmap's null probe), so such a connection had an empty
         * history. Every segment but the first SYN carries ACK (RFC 9293 3.10.7.4), so
         * it is an inconsistent packet: Zeek's 'I', once. */
        else check_history(c, side, HIST_FIN_RST, 'I');
    }
}

/* ---- endpoint state and sequence space ------------------------------------------------- */

static inline int is_handshake(uint8_t z) {
    return z == Z_INACTIVE || z == Z_SYN_SENT || z == Z_SYN_ACK_SENT;
}

/* TCP_Endpoint::SetState, with its switch to tcp_inactivity_timeout. */
static void set_state(Conn *c, int side, uint8_t z) {
    Side *e = &c->s[side], *p = &c->s[side ^ 1];
    if (z == e->z) return;
    if (!is_handshake(z) && is_handshake(e->z) && is_handshake(p->z)) c->z_inactivity_long = 1;
    e->zprev = e->z;
    e->z = z;
}

static void init_seq(Side *e, uint32_t start, uint32_t ack, uint32_t last) {
    e->rs_last = e->rs_trim = 1; /* the reassembler's first data octet */
    e->n_blk = 0;
    e->z_start = start;
    e->z_ack = ack;
    e->z_last = last;
}

static uint64_t get_relative_seq(const Side *e, uint32_t cur, uint32_t last, uint32_t wraps,
                                 int *underflow) {
    int32_t d = seq_delta(cur, last);
    if (d < 0) {
        if (wraps && cur > last) --wraps;
    } else if (d > 0) {
        if (cur < last) ++wraps;
    }
    if (wraps == 0) {
        d = seq_delta(cur, (uint32_t)e->z_start);
        if (underflow && d < 0) *underflow = 1;
        return (uint64_t)(int64_t)d;
    }
    return ((uint64_t)wraps << 32) + cur - (uint64_t)e->z_start;
}

static void init_endpoint(Side *e, const Segment *s, uint32_t first, uint32_t last) {
    int syn = s->flags & F_SYN;
    switch (e->z) {
    case Z_INACTIVE:
        if (syn) {
            init_seq(e, first, first, last);
        } else { /* partial: number bytes as though a SYN had been seen */
            init_seq(e, first - 1, first - 1, first);
        }
        break;
    case Z_SYN_SENT: case Z_SYN_ACK_SENT:
        if (syn && first != (uint32_t)e->z_start) init_seq(e, first, first, last);
        break;
    case Z_ESTABLISHED: case Z_PARTIAL:
        if (syn) init_seq(e, first, first, last);
        break;
    case Z_RESET:
        if (syn && e->zprev == Z_INACTIVE) init_seq(e, first, first, last);
        break;
    }
}

static void update_ack_seq(Side *e, uint32_t ack) {
    int32_t d = seq_delta(ack, e->z_ack);
    if (ack == 0 && d > TOO_LARGE_SEQ_DELTA) return; /* a broken ack, not a wrap to 0 */
    if (d > 0) {
        if (ack < e->z_ack) ++e->z_ack_wraps;
        e->z_ack = ack;
    }
}

static int32_t update_last_seq(Conn *c, int side, uint32_t last, const Segment *s) {
    Side *e = &c->s[side];
    int32_t d = seq_delta(last, e->z_last);
    if ((s->flags & (F_SYN | F_RST)) && (d > TOO_LARGE_SEQ_DELTA || d < -TOO_LARGE_SEQ_DELTA))
        return d;
    if (((s->flags & F_FIN) && e->z_last == (uint32_t)e->z_start + 1) ||
        (e->z != Z_RESET && d > 0)) {
        if (last < e->z_last) ++e->z_last_wraps;
        e->z_last = last;
    } else if (e->z != Z_RESET && d <= 0 && s->payload_len > 0) {
        scaled_history(c, side, 'T', &e->rxmt_cnt, &e->rxmt_thresh); /* DidRxmit */
    }
    return d;
}

/* NoDataAcked: at most the SYN octet has been acknowledged. */
static int no_data_acked(const Side *e) {
    uint64_t ack = ((uint64_t)e->z_ack_wraps << 32) + e->z_ack;
    uint64_t start = (uint64_t)e->z_start;
    return ack == start || ack == start + 1;
}

uint64_t zeek_size(const Side *e, const Side *peer) {
    if (e->zprev == Z_SYN_SENT && e->z == Z_RESET && peer->z == Z_INACTIVE && !no_data_acked(e))
        return 0; /* a half-open connection found and aborted */
    uint64_t last = ((uint64_t)e->z_last_wraps << 32) + e->z_last;
    uint64_t ack = ((uint64_t)e->z_ack_wraps << 32) + e->z_ack;
    uint64_t start = (uint64_t)e->z_start;
    uint64_t size = last > ack ? last - start : ack - start;
    if (size) size--;                 /* the SYN octet (real or assumed) */
    if (e->fin_cnt && size) size--;   /* the FIN octet */
    return size;
}

/* ---- state machine (UpdateStateMachine and its Update*State helpers) ---------------------- */

static void connection_closed(const Tracker *t, Conn *c, int side, int gen_event) {
    Side *e = &c->s[side], *p = &c->s[side ^ 1];
    if (e->did_close) return;
    e->did_close = 1;
    int complete = e->z == Z_RESET || p->did_close || p->z == Z_INACTIVE;
    if (complete) {
        if ((e->zprev != Z_INACTIVE || p->z != Z_INACTIVE) && gen_event)
            c->z_active = 0; /* ConnectionFinished */
        c->t_attempt = c->t_expire = 0; /* CancelTimers, then the delete timer */
        c->t_delete = c->z_last_time + t->close_ns;
    } else if (e->zprev != Z_INACTIVE) {
        int64_t at = c->z_last_time + 6 * NS; /* tcp_session_timer: look for the other side */
        if (!c->t_expire || at < c->t_expire) c->t_expire = at;
    }
}

static void update_state_machine(const Tracker *t, Conn *c, int side, const Segment *s,
                                 int *do_close, int *gen_event) {
    Side *e = &c->s[side], *p = &c->s[side ^ 1];
    int io = is_orig(c, side); /* as at the start of the packet, like Zeek's is_orig */
    int syn = s->flags & F_SYN, ack = s->flags & F_ACK, fin = s->flags & F_FIN,
        rst = s->flags & F_RST;
    *do_close = *gen_event = 0;
    switch (e->z) {
    case Z_INACTIVE:
        if (syn) {
            if (io) {
                set_state(c, side, ack ? Z_SYN_ACK_SENT : Z_SYN_SENT);
                c->t_attempt = s->ts_ns + t->attempt_ns;
            } else {
                if (!ack && p->z == Z_SYN_ACK_SENT && s->seq == (uint32_t)e->z_start) {
                    /* SYN/SYN-ACK reversal: flip the endpoints, establish */
                    flip_roles(c);
                    c->z_partial = 0;
                    set_state(c, side ^ 1, Z_ESTABLISHED);
                }
                if (p->z == Z_SYN_SENT) set_state(c, side ^ 1, Z_ESTABLISHED);
                set_state(c, side, Z_ESTABLISHED);
            }
        }
        if (fin) {
            set_state(c, side, Z_CLOSED);
            *do_close = *gen_event = 1;
        }
        if (rst) {
            set_state(c, side, Z_RESET);
            int reject = io ? p->z == Z_ESTABLISHED : (p->z == Z_SYN_SENT || p->z == Z_SYN_ACK_SENT);
            *do_close = 1;
            *gen_event = !reject;
        }
        if (e->z == Z_INACTIVE) {
            if (!io && s->payload_len == 0 && c->s[c->orig].z == Z_SYN_SENT)
                ; /* an ACK of the SYN before the SYN-ACK does not make a partial conn */
            else if (ack && p->z == Z_ESTABLISHED) {
                set_state(c, side, Z_ESTABLISHED); /* the SYN was missed */
                c->z_partial = 0;
            }
            else
                set_state(c, side, Z_PARTIAL);
        }
        break;
    case Z_SYN_SENT:
    case Z_SYN_ACK_SENT:
        if (fin) {
            set_state(c, side, Z_CLOSED);
            *do_close = *gen_event = 1;
        }
        if (rst) {
            set_state(c, side, Z_RESET);
            c->z_active = 0; /* ConnectionReset */
            *do_close = 1;
        }
        break;
    case Z_ESTABLISHED:
    case Z_PARTIAL:
        if (syn && e->z == Z_PARTIAL && p->z == Z_INACTIVE && !ack) set_state(c, side, Z_SYN_SENT);
        if (fin && !rst) {
            set_state(c, side, Z_CLOSED);
            if (p->z == Z_RESET && p->zprev == Z_CLOSED)
                set_state(c, side ^ 1, Z_CLOSED); /* FIN then RST was a normal close */
            *do_close = *gen_event = 1;
        }
        if (rst) {
            set_state(c, side, Z_RESET);
            *do_close = 1;
            if (p->z != Z_RESET || p->zprev != Z_ESTABLISHED) c->z_active = 0;
        }
        break;
    case Z_CLOSED:
        if (rst && p->z != Z_CLOSED) {
            set_state(c, side, Z_RESET);
            if (!e->did_close) *do_close = 1;
        }
        break;
    case Z_RESET:
        break;
    }
}

/* ---- zero windows and content gaps (history w/W, g/G) ------------------------------ */

/* update_window's test: a zero window is news unless it comes with or after a RST, or
 * after the peer's FIN. */
static void zero_window(Conn *c, int side, const Segment *s) {
    Side *e = &c->s[side], *p = &c->s[side ^ 1];
    if (s->win == 0 && !(s->flags & F_RST) && p->z != Z_CLOSED && e->z != Z_RESET)
        scaled_history(c, side, 'W', &e->win0_cnt, &e->win0_thresh); /* ZeroWindow */
}

static inline int is_clean(const Side *e) {
    return e->z == Z_ESTABLISHED || (e->z == Z_CLOSED && e->zprev == Z_ESTABLISHED);
}

/* TCP_Reassembler::Gap: a letter only for a cleanly established or closing connection. */
static void gap(Conn *c, int side) {
    Side *e = &c->s[side];
    if (is_clean(e) && is_clean(&c->s[side ^ 1]))
        scaled_history(c, side, 'G', &e->gap_cnt, &e->gap_thresh);
}

static uint64_t rel_space(const Side *e, uint32_t seq, uint32_t wraps) {
    return ((uint64_t)wraps << 32) + seq - (uint64_t)e->z_start;
}

/* BlockInserted: deliver the blocks the new data made contiguous. */
static void deliver_blocks(Side *e) {
    int k = 0;
    while (k < e->n_blk && e->blk_lo[k] <= e->rs_last) {
        if (e->blk_hi[k] > e->rs_last) e->rs_last = e->blk_hi[k];
        k++;
    }
    memmove(e->blk_lo, e->blk_lo + k, (size_t)(e->n_blk - k) * sizeof e->blk_lo[0]);
    memmove(e->blk_hi, e->blk_hi + k, (size_t)(e->n_blk - k) * sizeof e->blk_hi[0]);
    e->n_blk = (uint8_t)(e->n_blk - k);
}

/* Keep [lo, hi) above the hole; blocks stay sorted and disjoint (the last one absorbs
 * the rest when there is no room: only where holes start matters for gap letters). */
static void add_block(Side *e, uint64_t lo, uint64_t hi) {
    int k = 0;
    while (k < e->n_blk && e->blk_hi[k] < lo) k++;
    if (k < e->n_blk && e->blk_lo[k] <= hi) { /* overlaps or touches block k */
        if (lo < e->blk_lo[k]) e->blk_lo[k] = lo;
        if (hi > e->blk_hi[k]) e->blk_hi[k] = hi;
        while (k + 1 < e->n_blk && e->blk_lo[k + 1] <= e->blk_hi[k]) {
            if (e->blk_hi[k + 1] > e->blk_hi[k]) e->blk_hi[k] = e->blk_hi[k + 1];
            memmove(e->blk_lo + k + 1, e->blk_lo + k + 2, (size_t)(e->n_blk - k - 2) * 8);
            memmove(e->blk_hi + k + 1, e->blk_hi + k + 2, (size_t)(e->n_blk - k - 2) * 8);
            e->n_blk--;
        }
        return;
    }
    if (e->n_blk == 4) {
        if (hi > e->blk_hi[3]) e->blk_hi[3] = hi;
        if (lo < e->blk_lo[3] && k == 4) e->blk_lo[3] = lo;
        return;
    }
    memmove(e->blk_lo + k + 1, e->blk_lo + k, (size_t)(e->n_blk - k) * 8);
    memmove(e->blk_hi + k + 1, e->blk_hi + k, (size_t)(e->n_blk - k) * 8);
    e->blk_lo[k] = lo;
    e->blk_hi[k] = hi;
    e->n_blk++;
}

/* TCP_Reassembler::DataSent for the data of one segment at relative `seq`. */
static void data_sent(Side *e, uint64_t seq, uint32_t len) {
    if (e->rs_skip) return;
    uint64_t ack = rel_space(e, e->z_ack, e->z_ack_wraps), upper = seq + len;
    if (seq < ack) {
        if (upper <= ack) return; /* delivered and acknowledged already */
        seq = ack;
    }
    if (upper <= e->rs_trim) return;
    if (seq < e->rs_trim) seq = e->rs_trim;
    if (seq <= e->rs_last) {
        if (upper > e->rs_last) e->rs_last = upper;
        deliver_blocks(e);
    } else {
        add_block(e, seq, upper);
    }
    /* tcp_max_above_hole_without_any_acks (16 kB): give up on this endpoint */
    if (e->n_blk && no_data_acked(e) && e->blk_hi[e->n_blk - 1] - e->rs_last > 16384) {
        e->n_blk = 0;
        e->rs_skip = 1;
    }
}

/* TCP_Reassembler::AckReceived: acknowledged data never seen is a content gap. */
static void ack_received(Conn *c, int side, uint64_t seq) {
    Side *e = &c->s[side];
    if (e->fin_cnt && seq >= e->fin_seq) seq = e->fin_seq - 1;
    if (seq <= e->rs_trim) return;
    /* Undelivered; a partial connection's first ack (of 1 or 2) is not a gap */
    if (seq > e->rs_last && !(seq <= 2 && c->z_partial)) {
        if (!e->rs_skip) {
            while (e->n_blk && e->blk_lo[0] < seq) {
                if (e->blk_lo[0] > e->rs_last) gap(c, side);
                e->rs_last = e->blk_lo[0];
                deliver_blocks(e);
            }
            if (seq > e->rs_last) gap(c, side);
        }
        if (seq > e->rs_last) e->rs_last = seq;
    }
    e->rs_trim = seq;
    int k = 0; /* blocks below the ack are gone (TrimToSeq) */
    while (k < e->n_blk && e->blk_hi[k] <= seq) k++;
    if (k) {
        memmove(e->blk_lo, e->blk_lo + k, (size_t)(e->n_blk - k) * 8);
        memmove(e->blk_hi, e->blk_hi + k, (size_t)(e->n_blk - k) * 8);
        e->n_blk = (uint8_t)(e->n_blk - k);
    }
}

/* TCPSessionAdapter::SetPartialStatus (the first packet each side sends). */
static void set_partial_status(Conn *c, int side, const Segment *s) {
    int bit = is_orig(c, side) ? 1 : 2;
    if (c->z_first_seen & bit) return;
    c->z_first_seen |= (uint8_t)bit;
    if (bit == 1) c->z_partial = !(s->flags & F_SYN) || (s->flags & F_ACK);
    else if (!c->z_partial) c->z_partial = !(s->flags & F_SYN);
}

/* TCPSessionAdapter::Process, in Zeek's order. */
void zeek_process(Tracker *t, Conn *c, int side, const Segment *s) {
    Side *e = &c->s[side], *p = &c->s[side ^ 1];
    int syn = !!(s->flags & F_SYN), fin = !!(s->flags & F_FIN), rst = !!(s->flags & F_RST),
        ack = !!(s->flags & F_ACK);
    uint32_t seg_len = s->payload_len + (uint32_t)syn + (uint32_t)fin;
    if (rst) seg_len -= s->payload_len;
    uint32_t past = s->seq + seg_len;

    set_partial_status(c, side, s);
    init_endpoint(e, s, s->seq, past);
    int seq_underflow = 0;
    uint64_t rel_seq = get_relative_seq(e, s->seq, e->z_last, e->z_last_wraps, &seq_underflow);
    update_history(c, side, s, rel_seq);
    zero_window(c, side, s);
    if (!c->s[0].did_close || !c->s[1].did_close) c->z_last_time = s->ts_ns;
    if (fin) {
        e->fin_cnt++;
        e->fin_seq = rel_seq + seg_len;
    }
    uint64_t rel_ack = 0;
    if (ack) {
        if (p->z == Z_INACTIVE) {
            rel_ack = 1;
            init_seq(p, s->ack - 1, s->ack - 1, s->ack - 1); /* init_peer */
        } else {
            int underflow = 0;
            rel_ack = get_relative_seq(p, s->ack, p->z_ack, p->z_ack_wraps, &underflow);
            if (underflow) rel_ack = 0;
            else if (!rst) update_ack_seq(p, s->ack);
        }
    }
    update_last_seq(c, side, past, s);
    int do_close, gen_event;
    update_state_machine(t, c, side, s, &do_close, &gen_event);
    /* after the state machine, so a gap revealed by a FIN or RST is judged on it */
    if (ack) ack_received(c, side ^ 1, rel_ack);
    if (s->payload_len && !s->payload_cut && !rst && !seq_underflow)
        data_sent(e, syn ? rel_seq + 1 : rel_seq, s->payload_len);
    if (do_close) connection_closed(t, c, side, gen_event);
    e->z_pkts++; /* ConnSize_Analyzer */
    e->z_ip_bytes += s->ip_len;
}

void zeek_bad_checksum(Conn *c, int side) {
    Side *e = &c->s[side];
    scaled_history(c, side, 'C', &e->chk_cnt, &e->chk_thresh);
}

/* ---- connections: roles, reuse, timers ---------------------------------------------------- */

/* Ports that Zeek's default scripts add to likely_server_ports. */
static int likely_server_port(uint16_t p) {
    switch (p) {
    case 21: case 22: case 23: case 25: case 53: case 80: case 81: case 88: case 110:
    case 111: case 135: case 139: case 143: case 389: case 443: case 445: case 502:
    case 513: case 514: case 563: case 585: case 587: case 614: case 631: case 636:
    case 989: case 990: case 992: case 993: case 995: case 1080: case 1433: case 1883:
    case 2049: case 2811: case 3128: case 3268: case 3306: case 3389: case 5060:
    case 5223: case 5432: case 6379: case 6666: case 6667: case 6668: case 6669:
    case 8000: case 8080: case 8888: case 20000:
        return 1;
    default:
        return 0;
    }
}

/* A new connection's roles (TCPAnalyzer::WantConnection). By default one deliberate
 * difference: a SYN-ACK seen first always makes its sender the server, as a network
 * engineer reads it, and a well-known port talking to an ephemeral one is the server.
 * Given Zeek's likely_server_ports (which depend on the scripts Zeek loaded), Zeek's
 * rule exactly: flip only when the sender's port is likely. */
void zeek_new_conn(Tracker *t, Conn *c, int from, const Segment *s) {
    c->orig = (uint8_t)from;
    c->z_active = 1;
    c->z_last_time = s->ts_ns;
    c->t_expire = s->ts_ns + 5 * NS; /* tcp_SYN_timeout */
    int syn = s->flags & F_SYN, ack = s->flags & F_ACK;
    if (syn && !ack) return;
    c->roles_guessed = 1;
    if (t->likely_ports) {
#define LIKELY(p) (t->likely_ports[(p) >> 3] >> ((p) & 7) & 1)
        if (LIKELY(s->sport) && (!LIKELY(s->dport) || (!syn && s->sport < s->dport)))
            flip_roles(c);
#undef LIKELY
        return;
    }
    if (syn) {
        flip_roles(c);
    } else if (likely_server_port(s->sport)) {
        if (!likely_server_port(s->dport) || s->sport < s->dport) flip_roles(c);
    } else if (!likely_server_port(s->dport) && s->sport < s->dport && s->sport < 1024 &&
               s->dport >= 1024) {
        flip_roles(c); /* a well-known port talking to an ephemeral one */
    }
}

/* TCPSessionAdapter::IsReuse, evaluated before the packet is processed. */
int zeek_is_reuse(const Conn *c, const Segment *s) {
    if (!(s->flags & F_SYN)) return 0;
    const Side *o = &c->s[c->orig], *r = &c->s[c->orig ^ 1];
    const Side *conn_orig = o;
    if (s->flags & F_ACK) {
        if (o->z != Z_INACTIVE) return 0; /* not a half connection */
        conn_orig = r;
    }
    if (!(o->did_close || r->did_close)) {
        if (s->seq == (uint32_t)conn_orig->z_start) return 0;
        if (!(s->flags & F_ACK) && conn_orig->z == Z_SYN_ACK_SENT && r->z == Z_INACTIVE &&
            s->seq == (uint32_t)r->z_start)
            return 0; /* SYN and SYN-ACK captured in reverse order */
    }
    return 1;
}

/* The SYN of an attempt retried where Zeek starts a new connection (IsReuse) but TCP
 * does not (conn_split_here): a refused SYN sent again, a SYN-SENT endpoint's RST to a
 * stale ACK and its SYN again. Zeek's endpoints and timers start afresh, as in the new
 * connection Zeek would make, so conn_state describes the attempt that went on; the
 * history and packet counts go on, since the connection does. */
void zeek_restart(const Tracker *t, Conn *c, const Segment *s) {
    (void)t;
    for (int i = 0; i < 2; i++) {
        Side *e = &c->s[i];
        e->z = e->zprev = Z_INACTIVE;
        e->did_close = 0;
        e->fin_cnt = 0;
        e->z_start = 0;
        e->z_last = e->z_last_wraps = e->z_ack = e->z_ack_wraps = 0;
        e->fin_seq = e->rs_last = e->rs_trim = 0;
        e->n_blk = e->rs_skip = 0;
    }
    c->z_active = 1;
    c->z_inactivity_long = 0;
    c->z_partial = c->z_first_seen = 0;
    c->z_last_time = s->ts_ns;
    c->t_attempt = c->t_delete = 0;
    c->t_expire = s->ts_ns + 5 * NS; /* tcp_SYN_timeout, as zeek_new_conn */
}

/* Would Zeek have removed the connection before a packet at `ts`? Its timers fire before
 * the packet that reaches them (AttemptTimer, ExpireTimer, ConnDeleteTimer and the
 * session inactivity timer). Only under zeek_timers (conn_split_here). */
int zeek_expired(const Tracker *t, Conn *c, int64_t ts) {
    const Side *o = &c->s[c->orig], *r = &c->s[c->orig ^ 1];
    int64_t inactivity = c->z_inactivity_long ? t->inactivity_ns : 60 * NS;
    for (;;) {
        int64_t at = c->z_last_time + inactivity;
        int which = at <= ts ? 3 : -1;
        if (c->t_attempt && c->t_attempt <= ts && (which < 0 || c->t_attempt < at)) {
            which = 0;
            at = c->t_attempt;
        }
        if (c->t_expire && c->t_expire <= ts && (which < 0 || c->t_expire < at)) {
            which = 1;
            at = c->t_expire;
        }
        if (c->t_delete && c->t_delete <= ts && (which < 0 || c->t_delete < at)) which = 2;
        switch (which) {
        case -1:
            return 0;
        case 0: /* AttemptTimer */
            c->t_attempt = 0;
            if (c->z_active && (o->z == Z_SYN_SENT || o->z == Z_SYN_ACK_SENT) &&
                r->z == Z_INACTIVE)
                return 1;
            break;
        case 1: /* ExpireTimer */
            c->t_expire = 0;
            if (!c->z_active) break;
            if (c->z_last_time + 5 * NS < ts) { /* tcp_connection_linger */
                if ((o->did_close || r->did_close) &&
                    ((o->did_close && r->did_close) || o->z == Z_RESET || r->z == Z_RESET ||
                     o->z == Z_INACTIVE || r->z == Z_INACTIVE))
                    return 1;
                if (o->z == Z_INACTIVE && r->z == Z_INACTIVE) return 1;
            }
            c->t_expire = ts + 6 * NS;
            break;
        default: /* ConnDeleteTimer, inactivity */
            return 1;
        }
    }
}

/* conn_state() of scripts/base/protocols/conn/main.zeek, on the final endpoint states. */
int zeek_conn_state(const Conn *c) {
    const Side *o = &c->s[c->orig], *r = &c->s[c->orig ^ 1];
    int os = o->z, rs = r->z;
    int o_inactive = os == Z_INACTIVE || os == Z_PARTIAL;
    int r_inactive = rs == Z_INACTIVE || rs == Z_PARTIAL;
    if (rs == Z_RESET) {
        if (os == Z_SYN_SENT || os == Z_SYN_ACK_SENT ||
            (os == Z_RESET && zeek_size(o, r) == 0 && zeek_size(r, o) == 0))
            return CS_REJ;
        return o_inactive ? CS_RSTRH : CS_RSTR;
    }
    if (os == Z_RESET) {
        if (r_inactive) {
            /* history == /\^?S[^HAFGIQ]*R.* / (a whole-string match) */
            const char *h = conn_hist_c(c);
            if (*h == '^') h++;
            if (*h == 'S') {
                for (h++; *h; h++) {
                    if (*h == 'R') return CS_RSTOS0;
                    if (strchr("HAFGIQ", *h)) break;
                }
            }
            return CS_OTH;
        }
        return CS_RSTO;
    }
    if (rs == Z_CLOSED && os == Z_CLOSED) return CS_SF;
    if (os == Z_CLOSED) return r_inactive ? CS_SH : CS_S2;
    if (rs == Z_CLOSED) return o_inactive ? CS_SHR : CS_S3;
    if (os == Z_SYN_SENT && rs == Z_INACTIVE) return CS_S0;
    if (os == Z_ESTABLISHED && rs == Z_ESTABLISHED) return CS_S1;
    return CS_OTH;
}
