/* The connection tracker: a flow table keyed by the 4-tuple, and per connection
 *  - the RFC 9293 state of both endpoints, driven by analyzer.fsm's table,
 *  - Zeek's endpoint states, history letters and sequence bookkeeping (conn_state),
 *  - handshake and close facts (ISNs, options, RTTs, retransmitted SYNs, FIN order).
 * It does no I/O: it is fed frames or segments with their timestamps. */
#include <stdlib.h>
#include <string.h>
#include "track.h"
#include "zeek.h"
#include "anomaly.h"

static inline int seq_gt(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }
static inline int seq_geq(uint32_t a, uint32_t b) { return (int32_t)(a - b) >= 0; }

/* ---- memory ------------------------------------------------------------------------- */

static int grow(Tracker *t, void **p, uint64_t *cap, uint64_t need, size_t elem) {
    if (need <= *cap) return 0;
    uint64_t n = *cap ? *cap : 1024;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) { t->oom = 1; return -1; }
    *p = q;
    *cap = n;
    return 0;
}

int tracker_init(Tracker *t, const uint8_t *fsm) {
    memset(t, 0, sizeof *t);
    memcpy(t->fsm, fsm, sizeof t->fsm);
    t->slot_mask = 4095;
    t->slots = calloc(t->slot_mask + 1, sizeof *t->slots);
    t->record_conn = -1;
    t->port_filter = -1;
    /* Zeek's defaults (init-bare.zeek). */
    t->attempt_ns = 5000000000ll;
    t->close_ns = 5000000000ll;
    t->reset_ns = 5000000000ll;
    t->partial_close_ns = 3000000000ll;
    t->inactivity_ns = 300000000000ll;
    /* When a connection is over, by TCP's clocks (conn_over). */
    t->linger_ns = 60000000000ll;      /* Linux's TIME_WAIT (TCP_TIMEWAIT_LEN) */
    t->syn_timeout_ns = 180000000000ll; /* R2 for a SYN: 3 minutes (RFC 9293 3.8.3) */
    t->idle_ns = 0;
    t->live_head = t->live_tail = t->free_conn = t->free_pend = NO_HANDLE;
    t->free_trans = NO_TRANS;
    return t->slots ? 0 : -1;
}

void tracker_free(Tracker *t) {
    for (uint32_t i = 0; i < t->n_conns; i++)
        free(t->conns[i].hist_heap);
    free(t->conns);
    free(t->slots);
    free(t->trans);
    free(t->rows);
    free(t->pends);
    free(t->done);
    free(t->likely_ports);
    for (uint32_t i = 0; i < t->n_bpf; i++)
        free(t->bpf[i].prog);
    memset(t, 0, sizeof *t);
}

/* ---- flow table --------------------------------------------------------------------- */

static inline uint64_t mix(uint64_t h) {
    h ^= h >> 33; h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

static uint64_t key_hash(uint8_t fam, const uint8_t *a, const uint8_t *b, uint16_t pa,
                         uint16_t pb) {
    uint64_t w[4];
    memcpy(w, a, 16);
    memcpy(w + 2, b, 16);
    uint64_t h = mix((uint64_t)fam << 32 ^ (uint64_t)pa << 16 ^ pb ^ w[0]);
    if (fam == 6) h = mix(h ^ w[1]);
    h = mix(h ^ w[2]);
    if (fam == 6) h = mix(h ^ w[3]);
    return h;
}

/* A segment's 4-tuple as the flow table keys it: the lower (address, port) is side 0.
 * Returns the side that sent it. */
static int canon(const Segment *s, const uint8_t **a, const uint8_t **b, uint16_t *pa,
                 uint16_t *pb) {
    int cmp = memcmp(s->src, s->dst, 16);
    int from = (cmp > 0 || (cmp == 0 && s->sport > s->dport)) ? 1 : 0;
    *a = from ? s->dst : s->src;
    *b = from ? s->src : s->dst;
    *pa = from ? s->dport : s->sport;
    *pb = from ? s->sport : s->dport;
    return from;
}

/* The key of a flow-table value (a handle + 1). */
static void handle_key(const Tracker *t, uint32_t h, uint8_t *fam, const uint8_t **a,
                       const uint8_t **b, uint16_t *pa, uint16_t *pb) {
    if (h & PEND_BIT) {
        const Segment *s = &t->pends[h & ~PEND_BIT].seg;
        *fam = s->family;
        canon(s, a, b, pa, pb);
    } else {
        const Conn *c = &t->conns[h];
        *fam = c->family;
        *a = c->addr[0];
        *b = c->addr[1];
        *pa = c->port[0];
        *pb = c->port[1];
    }
}

static uint32_t *find_slot(Tracker *t, uint8_t fam, const uint8_t *a, const uint8_t *b,
                           uint16_t pa, uint16_t pb) {
    uint32_t i = (uint32_t)key_hash(fam, a, b, pa, pb) & t->slot_mask;
    for (;;) {
        uint32_t v = t->slots[i];
        if (!v) return &t->slots[i];
        uint8_t vf;
        const uint8_t *va, *vb;
        uint16_t vpa, vpb;
        handle_key(t, v - 1, &vf, &va, &vb, &vpa, &vpb);
        if (vpa == pa && vpb == pb && vf == fam && !memcmp(va, a, 16) && !memcmp(vb, b, 16))
            return &t->slots[i];
        i = (i + 1) & t->slot_mask;
    }
}

/* Take handle h out of the flow table if it is there (a later connection of the same
 * 4-tuple may hold the slot): backward-shift deletion keeps linear probing whole. */
static void unhash(Tracker *t, uint32_t h) {
    uint8_t fam;
    const uint8_t *a, *b;
    uint16_t pa, pb;
    handle_key(t, h, &fam, &a, &b, &pa, &pb);
    uint32_t *slot = find_slot(t, fam, a, b, pa, pb);
    if (*slot != h + 1) return;
    uint32_t i = (uint32_t)(slot - t->slots), j = i;
    for (;;) {
        j = (j + 1) & t->slot_mask;
        uint32_t v = t->slots[j];
        if (!v) break;
        handle_key(t, v - 1, &fam, &a, &b, &pa, &pb);
        uint32_t home = (uint32_t)key_hash(fam, a, b, pa, pb) & t->slot_mask;
        /* v stays when its home lies cyclically in (i, j] */
        if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) continue;
        t->slots[i] = v;
        i = j;
    }
    t->slots[i] = 0;
    t->slot_used--;
}

/* Streaming entries (handles) in the list in id order. */
static uint32_t *link_prev(Tracker *t, uint32_t h) {
    return h & PEND_BIT ? &t->pends[h & ~PEND_BIT].live_prev : &t->conns[h].live_prev;
}
static uint32_t *link_next(Tracker *t, uint32_t h) {
    return h & PEND_BIT ? &t->pends[h & ~PEND_BIT].live_next : &t->conns[h].live_next;
}

/* Written out, or split off by a later connection of its 4-tuple: out of the flow table. */
static int marked_over(const Tracker *t, uint32_t h) {
    return h & PEND_BIT ? t->pends[h & ~PEND_BIT].over : t->conns[h].finished;
}

static int rehash(Tracker *t) {
    uint32_t size = (t->slot_mask + 1) * 2;
    uint32_t *n = calloc(size, sizeof *n);
    if (!n) { t->oom = 1; return -1; }
    free(t->slots);
    t->slots = n;
    t->slot_mask = size - 1;
    t->slot_used = 0;
    if (t->stream) { /* the entries not over, in id order */
        for (uint32_t h = t->live_head; h != NO_HANDLE;) {
            if (!marked_over(t, h)) {
                uint8_t fam;
                const uint8_t *a, *b;
                uint16_t pa, pb;
                handle_key(t, h, &fam, &a, &b, &pa, &pb);
                uint32_t *s = find_slot(t, fam, a, b, pa, pb);
                if (!*s) t->slot_used++;
                *s = h + 1;
            }
            h = *link_next(t, h);
        }
        return 0;
    }
    for (uint32_t k = 0; k < t->n_conns; k++) { /* later conns of a tuple win */
        Conn *c = &t->conns[k];
        uint32_t *s = find_slot(t, c->family, c->addr[0], c->addr[1], c->port[0], c->port[1]);
        if (!*s) t->slot_used++;
        *s = k + 1;
    }
    return 0;
}

/* ---- transitions --------------------------------------------------------------------- */

static void add_transition(Tracker *t, Conn *c, int side, uint8_t state, uint8_t how,
                           uint8_t input, int64_t ts, uint64_t pkt) {
    uint32_t k;
    if (t->free_trans != NO_TRANS) { /* streaming: those of connections written out */
        k = t->free_trans;
        t->free_trans = t->trans[k].next;
    } else {
        uint64_t cap = t->cap_trans;
        if (grow(t, (void **)&t->trans, &cap, (uint64_t)t->n_trans + 1, sizeof *t->trans))
            return;
        t->cap_trans = (uint32_t)cap;
        k = t->n_trans++;
    }
    Transition *tr = &t->trans[k];
    tr->ts_ns = ts;
    tr->pkt_no = pkt;
    tr->next = NO_TRANS;
    tr->conn = c->id;
    tr->side = (uint8_t)side;
    tr->state = state;
    tr->how = how;
    tr->input = input;
    if (c->trans_tail == NO_TRANS) c->trans_head = k;
    else t->trans[c->trans_tail].next = k;
    c->trans_tail = k;
    /* A change dated back to an earlier packet (the server's LISTEN and SYN_RECEIVED are
     * only known once its SYN-ACK is seen) also holds in the packet rows recorded since:
     * the rows say what the transitions say. An unexpected input changes no state. */
    if (how == 2) return;
    for (uint64_t r = t->n_rows; r-- > 0 && t->rows[r].pkt_no >= pkt;)
        if (t->rows[r].conn == c->id) t->rows[r].state[side] = state;
}

/* Set an endpoint's first known state (inferred from what it was seen doing). */
static void set_initial(Tracker *t, Conn *c, int side, uint8_t state, int64_t ts,
                        uint64_t pkt) {
    c->s[side].st = state;
    add_transition(t, c, side, state, 1, 0xFF, ts, pkt);
}

/* Feed one input to one endpoint through the RFC 9293 table (analyzer.fsm); `how` says
 * whether the input was seen (HOW_NORMAL) or is proved by a later packet (HOW_INFERRED). */
static int rfc_input_how(Tracker *t, Conn *c, int side, int input, int64_t ts, uint64_t pkt,
                         uint8_t how) {
    Side *e = &c->s[side];
    if (e->st == ST_NONE) return 0;
    uint8_t nxt = t->fsm[e->st * N_INPUTS + input];
    if (nxt == 0xFF) { /* unexpected here: lost packets or a mid-stream start */
        c->unexpected++;
        add_transition(t, c, side, e->st, 2, (uint8_t)input, ts, pkt);
        return 1;
    }
    if (nxt != e->st) {
        e->st = nxt;
        add_transition(t, c, side, nxt, how, (uint8_t)input, ts, pkt);
    }
    return 0;
}

static int rfc_input(Tracker *t, Conn *c, int side, int input, int64_t ts, uint64_t pkt) {
    return rfc_input_how(t, c, side, input, ts, pkt, HOW_NORMAL);
}

/* The peer's FIN was applied to `side` (-> CLOSE_WAIT) when it was captured, but the
 * endpoint's own FIN does not acknowledge it: the FINs crossed (RFC 9293 figure 13).
 * Undo that transition; the caller replays the FIN after the endpoint's own. */
static void retract_recv_fin(Tracker *t, Conn *c, int side) {
    Side *e = &c->s[side];
    Transition *tr = &t->trans[e->recv_fin_trans];
    uint64_t since = tr->pkt_no;
    tr->how = HOW_RETRACTED;
    e->st = e->before_recv_fin;
    e->recv_fin_trans = NO_TRANS;
    for (uint64_t k = t->n_rows; k-- > 0;) { /* rows recorded since showed CLOSE_WAIT */
        PacketRow *r = &t->rows[k];
        if (r->pkt_no < since) break;
        if (r->conn == c->id) r->state[side] = e->st;
    }
}

/* ---- connection creation and roles --------------------------------------------------- */

/* A Conn for a new connection (id NO_HANDLE: the next id) or for a Pend's (its id). The
 * caller links it in the streaming list. */
static Conn *new_conn(Tracker *t, const Segment *s, const uint8_t *a, const uint8_t *b,
                      uint16_t pa, uint16_t pb, uint32_t *slot, uint32_t id) {
    uint32_t k;
    if (t->stream && t->free_conn != NO_HANDLE) {
        k = t->free_conn;
        t->free_conn = t->conns[k].live_next;
    } else {
        uint64_t cap = t->cap_conns;
        if (grow(t, (void **)&t->conns, &cap, (uint64_t)t->n_conns + 1, sizeof *t->conns))
            return NULL;
        t->cap_conns = (uint32_t)cap;
        k = t->n_conns++;
    }
    Conn *c = &t->conns[k];
    memset(c, 0, sizeof *c);
    c->live_prev = c->live_next = NO_HANDLE;
    c->family = s->family;
    memcpy(c->addr[0], a, 16);
    memcpy(c->addr[1], b, 16);
    c->port[0] = pa;
    c->port[1] = pb;
    c->id = id != NO_HANDLE ? id : t->n_ids++;
    c->first_pkt = s->pkt_no;
    c->first_ts = s->ts_ns;
    c->trans_head = c->trans_tail = NO_TRANS;
    c->hs_syn_ts = c->hs_synack_ts = c->hs_synack_last_ts = c->hs_ack_ts = TS_UNSET;
    c->hs_first_syn_ts = TS_UNSET;
    c->self_connect = pa == pb && !memcmp(a, b, 16);
    c->hist_cap = sizeof c->hist_inline; /* memset left hist_heap NULL, inline "" */
    for (int i = 0; i < 2; i++) {
        c->s[i].st = ST_NONE;
        c->s[i].mss = -1;
        c->s[i].wscale = -1;
        c->s[i].recv_fin_trans = NO_TRANS;
    }
    if (!*slot) t->slot_used++;
    *slot = k + 1;
    return c;
}

/* ---- streaming: the entries in id order -------------------------------------------------- */

static void live_append(Tracker *t, uint32_t h) {
    *link_prev(t, h) = t->live_tail;
    *link_next(t, h) = NO_HANDLE;
    if (t->live_tail == NO_HANDLE) t->live_head = h;
    else *link_next(t, t->live_tail) = h;
    t->live_tail = h;
    t->n_live++;
}

static void live_unlink(Tracker *t, uint32_t h) {
    uint32_t prev = *link_prev(t, h), next = *link_next(t, h);
    if (prev == NO_HANDLE) t->live_head = next;
    else *link_next(t, prev) = next;
    if (next == NO_HANDLE) t->live_tail = prev;
    else *link_prev(t, next) = prev;
    t->n_live--;
}

/* `to` takes `from`'s place in the list (a Pend replayed into a Conn). */
static void live_replace(Tracker *t, uint32_t from, uint32_t to) {
    uint32_t prev = *link_prev(t, from), next = *link_next(t, from);
    *link_prev(t, to) = prev;
    *link_next(t, to) = next;
    if (prev == NO_HANDLE) t->live_head = to;
    else *link_next(t, prev) = to;
    if (next == NO_HANDLE) t->live_tail = to;
    else *link_prev(t, next) = to;
}

/* ---- RFC 9293 view: segment -> inputs for both endpoints ------------------------------ */

/* The endpoint sent a bare SYN and is still waiting for the answer (SYN-SENT). */
static inline int awaits_synack(const Side *e) {
    return e->sent_syn && !e->sent_synack && e->st == TS_SYN_SENT;
}

/* A segment to an endpoint waiting in SYN-SENT whose ACK does not acknowledge its SYN
 * (RFC 9293 3.10.7.3 first: SEG.ACK =< ISS or SEG.ACK > SND.NXT): an old duplicate
 * SYN-ACK (figure 8), or the ACK of a connection the peer still holds on this 4-tuple (a
 * half-open peer, figure 9; a challenge ACK, RFC 5961 4). The receiver answers it with
 * <SEQ=SEG.ACK><RST> and stays in SYN-SENT: it is not this connection's. SND.NXT is past
 * the data of a Fast Open SYN (RFC 7413). */
static inline int unacceptable_ack(const Side *to, const Segment *s) {
    return (s->flags & F_ACK) && awaits_synack(to) &&
           !(seq_gt(s->ack, to->isn) && seq_geq(to->nxt, s->ack));
}

/* The sender waits in SYN-SENT, yet its next segment after the SYN acknowledges
 * something: it received a SYN-ACK the capture missed (a tap that sees one direction, a
 * drop at the capture point). RFC 9293 3.10.7.3 fourth: only an acceptable SYN-ACK takes
 * SYN-SENT to sending ACKs. */
static inline int acks_unseen_synack(const Side *e, const Segment *s) {
    return (s->flags & (F_SYN | F_ACK | F_RST)) == F_ACK && awaits_synack(e) &&
           s->seq == e->nxt;
}

/* Infer the sender's state the first time it is seen. */
static void infer_sender(Tracker *t, Conn *c, int from, const Segment *s) {
    Side *e = &c->s[from], *p = &c->s[from ^ 1];
    int syn = s->flags & F_SYN, ack = s->flags & F_ACK;
    int64_t ts = s->ts_ns;
    uint64_t pkt = s->pkt_no;
    int peer_syn_pending = awaits_synack(p);
    if (syn && !ack) {
        e->st = TS_CLOSED; /* the active opener: CLOSED is left at once, not listed */
        return;
    }
    if (syn && ack) {
        if (peer_syn_pending) {
            /* a passive open: LISTEN since the first SYN, SYN_RECEIVED at the SYN it
             * answers (an earlier one may have been dropped, e.g. a full backlog) */
            set_initial(t, c, from, TS_LISTEN, p->first_syn_ts, c->first_pkt);
            e->st = TS_LISTEN;
            rfc_input(t, c, from, IN_RECV_SYN, p->last_syn_ts, p->last_syn_pkt);
        } else {
            set_initial(t, c, from, TS_LISTEN, ts, pkt);
        }
        return;
    }
    if ((s->flags & F_RST) && peer_syn_pending) {
        set_initial(t, c, from, TS_CLOSED, p->first_syn_ts, c->first_pkt); /* refused */
        return;
    }
    set_initial(t, c, from, TS_ESTABLISHED, ts, pkt); /* mid-stream, or an odd answer */
}

/* Infer the receiver's state when a segment reaches it before it was seen sending. */
static void infer_receiver(Tracker *t, Conn *c, int to, const Segment *s) {
    int syn = s->flags & F_SYN, ack = s->flags & F_ACK;
    /* A SYN's target stays unknown until it answers; a RST says nothing about it. */
    if ((syn && !ack) || (s->flags & F_RST)) return;
    set_initial(t, c, to, syn ? TS_SYN_SENT : TS_ESTABLISHED, s->ts_ns, s->pkt_no);
}

static void rfc_segment(Tracker *t, Conn *c, int from, const Segment *s, int unseen_synack) {
    Side *e = &c->s[from], *p = &c->s[from ^ 1];
    int to = from ^ 1;
    uint8_t f = s->flags;
    int64_t ts = s->ts_ns;
    uint64_t pkt = s->pkt_no;
    int syn = f & F_SYN, ack = f & F_ACK, fin = f & F_FIN, rst = f & F_RST;
    /* A segment with an unacceptable ACK is dropped by its SYN-SENT receiver; a sender
     * not seen before tells us nothing sure (it speaks for another incarnation). */
    int dropped = unacceptable_ack(p, s);
    if (dropped && e->st == ST_NONE) return;

    /* Whether this endpoint had received the peer's FIN shows in its own segments. */
    int fin_crossed = 0;
    if (e->recv_fin_trans != NO_TRANS) {
        if (ack && seq_geq(s->ack, p->fin_end)) e->recv_fin_trans = NO_TRANS;
        else if (fin && e->st == TS_CLOSE_WAIT) {
            retract_recv_fin(t, c, from);
            fin_crossed = 1;
        }
    }

    if (e->st == ST_NONE) {
        int simultaneous = syn && !ack && awaits_synack(p);
        infer_sender(t, c, from, s);
        if (simultaneous) {
            /* each side sent a SYN before it saw the other's (RFC 9293 figure 7) */
            c->simultaneous_open = 1;
            rfc_input(t, c, from, IN_SEND_SYN, ts, pkt);
            rfc_input(t, c, from, IN_RECV_SYN, ts, pkt);
            goto receiver;
        }
    }
    /* A client acknowledging a SYN-ACK that was not captured: what that proves, marked
     * inferred. The client got it (-> ESTABLISHED); a server not seen yet was listening
     * and answered the last SYN (LISTEN -> SYN_RECEIVED); this ACK completes its side. */
    if (unseen_synack) {
        rfc_input_how(t, c, from, IN_RECV_SYN_ACK, ts, pkt, HOW_INFERRED);
        if (p->st == ST_NONE) {
            set_initial(t, c, to, TS_LISTEN, e->first_syn_ts, c->first_pkt);
            rfc_input_how(t, c, to, IN_RECV_SYN, e->last_syn_ts, e->last_syn_pkt,
                          HOW_INFERRED);
        }
    }
    /* A server in SYN_RECEIVED sending data got the ACK of its SYN-ACK, captured or not
     * (Fast Open servers may send before it: not inferred for them). */
    if (!syn && !rst && ack && s->payload_len && e->st == TS_SYN_RECEIVED && e->sent_synack &&
        !c->fast_open)
        rfc_input_how(t, c, from, IN_RECV_ACK_OF_SYN, ts, pkt, HOW_INFERRED);
    /* The sender: what it sent says what it did (SYN, then FIN, then RST). */
    if (syn) rfc_input(t, c, from, ack ? IN_SEND_SYN_ACK : IN_SEND_SYN, ts, pkt);
    if (fin) rfc_input(t, c, from, IN_SEND_FIN, ts, pkt);
    if (fin_crossed) rfc_input(t, c, from, IN_RECV_FIN, ts, pkt); /* FIN_WAIT_1 -> CLOSING */
    if (rst) rfc_input(t, c, from, IN_SEND_RST, ts, pkt);

receiver:
    if (p->st == ST_NONE) {
        infer_receiver(t, c, to, s);
        if (p->st == ST_NONE) return;
    }
    if (dropped) return; /* 3.10.7.3 first: answered by RST (or not at all), dropped */
    /* The receiver, in RFC 9293 section 3.10.7.4 order: RST, SYN, ACK, FIN. */
    if (rst) {
        rfc_input(t, c, to, IN_RECV_RST, ts, pkt);
        return;
    }
    if (syn) rfc_input(t, c, to, ack ? IN_RECV_SYN_ACK : IN_RECV_SYN, ts, pkt);
    if (ack && !syn && p->st == TS_SYN_RECEIVED &&
        (unseen_synack || ((p->sent_syn || p->sent_synack) && seq_geq(s->ack, p->syn_end))))
        rfc_input(t, c, to, IN_RECV_ACK_OF_SYN, ts, pkt);
    if (ack && p->sent_fin && !p->fin_acked_pkt && seq_geq(s->ack, p->fin_end)) {
        p->fin_acked_ts = ts;
        p->fin_acked_pkt = pkt;
        rfc_input(t, c, to, IN_RECV_ACK_OF_FIN, ts, pkt);
    } else if (ack && !syn && !p->sent_fin && p->have_nxt && s->ack == p->nxt + 1) {
        /* acknowledges one octet past all it sent, as for a FIN it never sent
         * (3.10.7.4 fifth: an ACK of something not yet sent) */
        rfc_input(t, c, to, IN_RECV_ACK_OF_FIN, ts, pkt);
    }
    if (fin) {
        uint8_t before = p->st;
        rfc_input(t, c, to, IN_RECV_FIN, ts, pkt);
        if (p->st == TS_CLOSE_WAIT && before != TS_CLOSE_WAIT) {
            p->recv_fin_trans = c->trans_tail; /* until p's own segments confirm it */
            p->before_recv_fin = before;
        }
    }
}

/* ---- handshake and close facts --------------------------------------------------------- */

static void note_facts(Conn *c, int from, const Segment *s, int unseen_synack) {
    Side *e = &c->s[from], *p = &c->s[from ^ 1];
    uint8_t f = s->flags;
    int64_t ts = s->ts_ns;
    if (unacceptable_ack(p, s)) { /* not this connection's (3.10.7.3 first) */
        if (!(f & F_RST)) { /* answered by <SEQ=SEG.ACK><CTL=RST> */
            p->rst_answer_pending = 1;
            p->rst_answer_seq = s->ack;
        }
        return;
    }
    if (f & F_SYN) {
        if (!(e->sent_syn || e->sent_synack)) {
            e->isn = s->seq;
            e->syn_end = s->seq + 1;
            e->first_syn_ts = ts;
            e->mss = s->mss;
            e->wscale = s->wscale;
            e->sack_ok = s->sack_ok;
            e->ts_ok = s->ts_present;
            e->have_opts = 1;
        }
        e->last_syn_ts = ts;
        e->last_syn_pkt = s->pkt_no;
        if (f & F_ACK) {
            if (!e->sent_synack && p->sent_syn && c->hs_synack_ts == TS_UNSET) {
                /* TCP Fast Open: the SYN's data is acknowledged with it (RFC 7413 4.2);
                 * an ACK past SND.NXT never gets here (unacceptable_ack) */
                c->fast_open = seq_gt(s->ack, p->syn_end);
                c->hs_synack_ts = ts;
                c->hs_synack_pkt = s->pkt_no;
                c->hs_syn_ts = p->last_syn_ts;
                c->hs_first_syn_ts = p->first_syn_ts;
            } else if (p->sent_syn && c->hs_synack_ts != TS_UNSET && c->hs_ack_ts == TS_UNSET &&
                       p->last_syn_pkt > c->hs_synack_pkt) {
                /* the SYN was sent again after the SYN-ACK (which was lost on its way):
                 * this SYN-ACK answers the new SYN, and the server's half of the iRTT is
                 * the pair the completing ACK follows */
                c->hs_synack_ts = ts;
                c->hs_synack_pkt = s->pkt_no;
                c->hs_syn_ts = p->last_syn_ts;
            }
            /* the SYN-ACK that the completing ACK answers is the last one before it */
            if (p->sent_syn && c->hs_synack_ts != TS_UNSET && c->hs_ack_ts == TS_UNSET)
                c->hs_synack_last_ts = ts;
            e->sent_synack = 1;
            e->synack_count++;
        } else {
            e->sent_syn = 1;
            e->syn_count++;
        }
    } else if (unseen_synack && c->hs_synack_ts == TS_UNSET && c->hs_ack_ts == TS_UNSET) {
        /* the SYN-ACK was not captured: SYN -> ACK is still measurable (the iRTT) */
        c->hs_syn_ts = e->last_syn_ts;
        c->hs_first_syn_ts = e->first_syn_ts;
        c->hs_ack_ts = ts;
    } else if ((f & F_ACK) && c->hs_synack_ts != TS_UNSET && c->hs_ack_ts == TS_UNSET &&
               e->sent_syn &&
               p->sent_synack && seq_geq(s->ack, p->syn_end)) {
        c->hs_ack_ts = ts; /* the ACK that completes the three-way handshake */
        c->hs_complete = 1;
    }
    if ((f & F_SYN) && (f & F_ACK) && e->sent_syn && p->sent_syn) {
        c->simultaneous_open = 1; /* a SYN-ACK from a side that also sent a bare SYN */
        if (p->synack_count && !c->hs_complete) { c->hs_complete = 1; c->hs_ack_ts = ts; }
    }
    if (s->payload_len && p->sent_fin) e->data_after_peer_fin = 1;
    if ((f & F_FIN) && !e->sent_fin) {
        e->sent_fin = 1;
        e->fin_ts = ts;
        e->fin_pkt = s->pkt_no;
        e->fin_end = s->seq + s->payload_len + ((f & F_SYN) ? 1 : 0) + 1;
        if (p->sent_fin) {
            e->fin_acks_peer_fin = (f & F_ACK) && seq_geq(s->ack, p->fin_end);
            /* four-way: a separate ACK of the peer's FIN came before this FIN */
            e->peer_fin_acked_before_our_fin = p->fin_acked_pkt && p->fin_acked_pkt < s->pkt_no;
        }
    }
    /* A RST from SYN-SENT with SEQ=the unacceptable ACK it was sent answers that ACK
     * and leaves the attempt standing (3.10.7.3 first): it resets another incarnation,
     * not this connection. Any other RST is an abort. */
    int answer = (f & F_RST) && awaits_synack(e) && e->rst_answer_pending &&
                 s->seq == e->rst_answer_seq;
    if (answer) e->rst_answer_pending = 0;
    if ((f & F_RST) && !e->sent_rst && !answer) {
        e->sent_rst = 1;
        e->rst_ts = ts;
        e->rst_pkt = s->pkt_no;
    }
    if (!(f & F_RST)) { /* a RST's sequence number may be anything (RFC 9293 3.10.7.1) */
        uint32_t end = s->seq + s->payload_len + ((f & F_SYN) ? 1 : 0) + ((f & F_FIN) ? 1 : 0);
        if (!e->have_nxt || seq_gt(end, e->nxt)) e->nxt = end;
        e->have_nxt = 1;
    }
}

/* ---- a socket connected to itself ------------------------------------------------------- */

/* One input to the one endpoint, shown on both sides of the record. */
static void self_input(Tracker *t, Conn *c, int input, const Segment *s) {
    uint32_t before = c->trans_tail;
    rfc_input(t, c, 0, input, s->ts_ns, s->pkt_no);
    if (c->trans_tail != before) {
        Transition tr = t->trans[c->trans_tail];
        c->s[1].st = c->s[0].st;
        add_transition(t, c, 1, tr.state, tr.how, tr.input, tr.ts_ns, tr.pkt_no);
    }
}

/* A socket bound to a port and connected to the same address and port (RFC 9293 allows
 * it; Linux does it when an ephemeral port equals the target): every segment is sent and
 * received by the one endpoint, so it opens and closes simultaneously with itself. */
static void self_segment(Tracker *t, Conn *c, const Segment *s) {
    Side *e = &c->s[0];
    uint8_t f = s->flags;
    int syn = f & F_SYN, ack = f & F_ACK, fin = f & F_FIN, rst = f & F_RST;
    if (e->st == ST_NONE) {
        if (syn && !ack) {
            e->st = c->s[1].st = TS_CLOSED;
        } else {
            set_initial(t, c, 0, TS_ESTABLISHED, s->ts_ns, s->pkt_no);
            set_initial(t, c, 1, TS_ESTABLISHED, s->ts_ns, s->pkt_no);
        }
    }
    if (syn) {
        c->simultaneous_open = 1;
        self_input(t, c, ack ? IN_SEND_SYN_ACK : IN_SEND_SYN, s);
    }
    if (fin) self_input(t, c, IN_SEND_FIN, s);
    if (rst) {
        self_input(t, c, IN_SEND_RST, s);
    } else {
        if (syn) self_input(t, c, ack ? IN_RECV_SYN_ACK : IN_RECV_SYN, s);
        if (ack && !syn && e->st == TS_SYN_RECEIVED && e->sent_syn &&
            seq_geq(s->ack, e->syn_end))
            self_input(t, c, IN_RECV_ACK_OF_SYN, s);
        if (ack && e->sent_fin && !e->fin_acked_pkt && seq_geq(s->ack, e->fin_end)) {
            e->fin_acked_ts = c->s[1].fin_acked_ts = s->ts_ns;
            e->fin_acked_pkt = c->s[1].fin_acked_pkt = s->pkt_no;
            self_input(t, c, IN_RECV_ACK_OF_FIN, s);
        }
        if (fin) self_input(t, c, IN_RECV_FIN, s);
    }
    /* Facts: the SYN-ACK is the "server" half, everything else the "client" half. */
    note_facts(c, (syn && ack) ? 1 : 0, s, 0);
    Side *o = &c->s[1];
    if (fin && !o->sent_fin) { /* its one FIN closes both halves, neither acking the other */
        o->sent_fin = 1;
        o->fin_ts = e->fin_ts;
        o->fin_pkt = e->fin_pkt;
        o->fin_end = e->fin_end;
        o->fin_acks_peer_fin = 0;
    }
}

/* A bare SYN from the side that has said nothing yet while the other side's SYN waits
 * for an answer: the SYNs crossed (simultaneous open, RFC 9293 figure 7). Zeek calls a
 * SYN with another ISN a reused 4-tuple; here the handshake is still open, so it is
 * not reuse. */
static int crossing_syn(const Conn *c, int from, const Segment *s) {
    const Side *o = &c->s[c->orig];
    return (s->flags & (F_SYN | F_ACK | F_RST)) == F_SYN && from != c->orig &&
           c->s[from].pkts == 0 && awaits_synack(o);
}

/* A SYN (or SYN-ACK) repeating the ISN this side already used here: a retransmission of
 * the same attempt (RFC 9293 3.8.1), even after a RST refused it (Windows retries a
 * refused SYN twice, 0.5 s apart) or after a FIN (an nmap probe sent twice). A new
 * incarnation of the 4-tuple picks a new ISN (3.4.1). */
static int same_attempt(const Conn *c, int from, const Segment *s) {
    const Side *e = &c->s[from];
    if (!(s->flags & F_SYN)) return 0;
    int sent = (s->flags & F_ACK) ? e->sent_synack : e->sent_syn;
    return sent && s->seq == e->isn;
}

/* THE rule for splitting a 4-tuple into connections: does segment `s` end connection `c`
 * and start a new one? Anything that decides when a connection is over (the streaming
 * writer's expiry included) must agree with it.
 *  - By default, as TCP: a SYN with a new ISN after the connection closed, was reset or
 *    left its handshake (Zeek's IsReuse, which tshark shares: a SYN with another ISN),
 *    but never a SYN repeating this connection's ISN, never crossing SYNs (a
 *    simultaneous open), and never silence: TCP has no idle timeout (RFC 9293 3.8.4
 *    keep-alives may be hours apart).
 *  - Under zeek_timers, Zeek's answer: IsReuse as Zeek has it (a repeated ISN after a
 *    close is reuse too) and Zeek's timers (attempt, close, reset, inactivity). */
int conn_split_here(Tracker *t, Conn *c, int from, const Segment *s) {
    if (conn_over(t, c, s->ts_ns)) return SPLIT_OVER;
    if (t->zeek_timers)
        return zeek_is_reuse(c, s) && !crossing_syn(c, from, s) ? SPLIT_NEW : 0;
    return zeek_is_reuse(c, s) && !crossing_syn(c, from, s) && !same_attempt(c, from, s)
               ? SPLIT_NEW : 0;
}

/* ---- when a connection is over ------------------------------------------------------------ */

enum { PHASE_OPEN, PHASE_ATTEMPT, PHASE_CLOSED };

/* Where the endpoints stand: a handshake still open (an endpoint in SYN-SENT or
 * SYN-RECEIVED), closed (each endpoint seen is CLOSED, TIME-WAIT or back in LISTEN), or
 * open (synchronized, or half closed). */
static int conn_phase(const Conn *c) {
    int open = 0, attempt = 0;
    for (int i = 0; i < 2; i++) {
        uint8_t st = c->s[i].st;
        if (st == TS_SYN_SENT || st == TS_SYN_RECEIVED) attempt = 1;
        else if (st != ST_NONE && st != TS_CLOSED && st != TS_TIME_WAIT && st != TS_LISTEN)
            open = 1;
    }
    if (attempt && !open && !c->hs_complete) return PHASE_ATTEMPT;
    return open || attempt ? PHASE_OPEN : PHASE_CLOSED;
}

/* How long a connection in `phase` may be quiet before it is over. TCP itself has no idle
 * timeout (RFC 9293 3.8.4), so an open connection is never over unless idle_ns is set;
 * a closed one is gone once TIME-WAIT would have ended (Linux: 60 s; RFC 9293's 2 MSL
 * is 4 minutes), an attempt once its SYN would have been given up (R2: 3 minutes,
 * RFC 9293 3.8.3; Linux gives up after 127 s). A shorter idle_ns shortens all three.
 * 0: never. */
static int64_t quiet_limit(const Tracker *t, int phase) {
    int64_t limit = phase == PHASE_CLOSED ? t->linger_ns
                  : phase == PHASE_ATTEMPT ? t->syn_timeout_ns : 0;
    if (t->idle_ns > 0 && (limit == 0 || t->idle_ns < limit)) limit = t->idle_ns;
    return limit;
}

int conn_over(const Tracker *t, Conn *c, int64_t now) {
    if (c->finished) return 1;
    if (t->zeek_timers) return zeek_expired(t, c, now);
    int64_t limit = quiet_limit(t, conn_phase(c));
    return limit > 0 && now - c->last_ts > limit;
}

/* A Pend is one bare SYN: an attempt (its replayed Conn is in SYN-SENT, see can_pend). */
static int pend_over(const Tracker *t, const Pend *p, int64_t now) {
    int64_t limit = quiet_limit(t, PHASE_ATTEMPT);
    return limit > 0 && now - p->seg.ts_ns > limit;
}

/* ---- per packet ------------------------------------------------------------------------ */

static void conn_segment(Tracker *t, Conn *c, int from, const Segment *s);
static void sweep(Tracker *t);

/* Only a bare SYN of a new 4-tuple waits as a Pend: its Conn would be an attempt
 * (conn_phase), and nothing but the segment itself decides what replaying it gives. */
static int can_pend(const Tracker *t, const Segment *s) {
    return t->stream && !t->zeek_timers && t->record_conn == -1 && !s->csum_bad &&
           (s->flags & (F_SYN | F_ACK | F_RST | F_FIN)) == F_SYN &&
           !(s->sport == s->dport && !memcmp(s->src, s->dst, 16));
}

static int new_pend(Tracker *t, const Segment *s, uint32_t *slot) {
    uint32_t k;
    if (t->free_pend != NO_HANDLE) {
        k = t->free_pend;
        t->free_pend = t->pends[k].live_next;
    } else {
        uint64_t cap = t->cap_pends;
        if (grow(t, (void **)&t->pends, &cap, (uint64_t)t->n_pends + 1, sizeof *t->pends))
            return -1;
        t->cap_pends = (uint32_t)cap;
        k = t->n_pends++;
    }
    Pend *p = &t->pends[k];
    p->seg = *s;
    p->id = t->n_ids++;
    p->over = 0;
    if (!*slot) t->slot_used++;
    *slot = (k | PEND_BIT) + 1;
    live_append(t, k | PEND_BIT);
    return 0;
}

/* Pend k replayed into a Conn: it takes the Pend's place in the flow table (slot, or
 * none) and in the list (when listed). */
static Conn *replay_pend(Tracker *t, uint32_t k, uint32_t *slot, int listed) {
    Segment seg = t->pends[k].seg;
    uint32_t id = t->pends[k].id;
    const uint8_t *a, *b;
    uint16_t pa, pb;
    int from = canon(&seg, &a, &b, &pa, &pb);
    uint32_t none = 1; /* not in the flow table: a slot new_conn may overwrite */
    Conn *c = new_conn(t, &seg, a, b, pa, pb, slot ? slot : &none, id);
    if (!c) return NULL;
    uint32_t h = (uint32_t)(c - t->conns);
    if (listed) live_replace(t, k | PEND_BIT, h);
    t->pends[k].live_next = t->free_pend;
    t->free_pend = k;
    zeek_new_conn(t, c, from, &seg);
    conn_segment(t, c, from, &seg);
    return c;
}

void tracker_segment(Tracker *t, const Segment *s) {
    if (t->port_filter >= 0 && s->sport != t->port_filter && s->dport != t->port_filter) {
        t->skipped_port++;
        return;
    }
    if (s->ts_ns > t->now) {
        t->now = s->ts_ns;
    } else if (t->now - s->ts_ns > t->skew) {
        /* Times went back (a file not in time order): sweeps judge by the latest time
         * less the largest step back, as a later packet's own time may be that old. A step
         * back longer than any before, once something was written out, may have come too
         * late for a connection written out early: the caller warns. */
        t->skew = t->now - s->ts_ns;
        if (t->swept_any && !t->skew_late_pkt) t->skew_late_pkt = s->pkt_no;
    }
    /* A sweep costs the entries listed: one every 4096 + n_live / 2 packets (n_live as
     * the last sweep left it) keeps it O(1) each; a connection is a dozen packets, so it
     * waits past its time for a few % more. */
    if (t->stream && (t->sweep_every ? ++t->since_sweep >= t->sweep_every
                                     : ++t->since_sweep >= 4096 + t->sweep_held / 2 &&
                                           t->now - t->last_sweep >= 1000000000ll))
        sweep(t);
    const uint8_t *a, *b;
    uint16_t pa, pb;
    int from = canon(s, &a, &b, &pa, &pb);

    if ((t->slot_used + 1) * 2 > t->slot_mask + 1 && rehash(t)) return;
    uint32_t *slot = find_slot(t, s->family, a, b, pa, pb);
    Conn *c = NULL;
    if (*slot && ((*slot - 1) & PEND_BIT)) {
        c = replay_pend(t, (*slot - 1) & ~PEND_BIT, slot, 1);
        if (!c) return;
    } else if (*slot) {
        c = &t->conns[*slot - 1];
    }
    int carry = 0, split = c ? conn_split_here(t, c, from, s) : 0;
    /* Wireshark's analysis goes on across a new SYN's split (anomaly.c); not after a
     * connection was over: a streamed read has written it out and forgotten it then. */
    AnomCarry kept;
    if (split) {
        if (split == SPLIT_NEW) {
            anomaly_save(&kept, c);
            carry = 1;
        }
        conn_finish(t, c);
        c = NULL;
    } else if (c && !t->zeek_timers && !(s->flags & F_ACK) && zeek_is_reuse(c, s) &&
               !crossing_syn(c, from, s)) {
        zeek_restart(t, c, s); /* the same SYN again where Zeek would split: its view */
    }
    if (!c) {
        if (!carry && can_pend(t, s)) {
            new_pend(t, s, slot);
            return;
        }
        c = new_conn(t, s, a, b, pa, pb, slot, NO_HANDLE);
        if (!c) return;
        if (t->stream) live_append(t, (uint32_t)(c - t->conns));
        zeek_new_conn(t, c, from, s);
        if (carry) anomaly_restore(c, &kept);
    }
    conn_segment(t, c, from, s);
}

/* One segment of connection c, sent by key side `from`. */
static void conn_segment(Tracker *t, Conn *c, int from, const Segment *s) {
    Side *e = &c->s[from];
    c->last_pkt = s->pkt_no;
    c->last_ts = s->ts_ns;

    if (s->csum_bad) { /* like Zeek: record 'C', leave the state alone */
        t->bad_checksum++;
        zeek_bad_checksum(c, from);
        return;
    }
    e->pkts++;
    e->payload += s->payload_len;
    e->ip_bytes += s->ip_len;

    zeek_process(t, c, from, s);
    if (c->self_connect) {
        self_segment(t, c, s);
    } else {
        /* judged before either moves the state: both act on it */
        int unseen_synack = acks_unseen_synack(e, s);
        rfc_segment(t, c, from, s, unseen_synack);
        note_facts(c, from, s, unseen_synack);
    }
    uint32_t dup_ack_num, anomalies = anomaly_segment(c, from, s, &dup_ack_num);

    if (t->record_conn == -2 || t->record_conn == (int64_t)c->id) {
        uint64_t cap = t->cap_rows;
        if (!grow(t, (void **)&t->rows, &cap, t->n_rows + 1, sizeof *t->rows)) {
            t->cap_rows = cap;
            PacketRow *r = &t->rows[t->n_rows++];
            r->pkt_no = s->pkt_no;
            r->ts_ns = s->ts_ns;
            r->conn = c->id;
            r->seq = s->seq;
            r->ack = s->ack;
            r->len = s->payload_len;
            r->win = s->win;
            r->from_side = (uint8_t)from;
            r->flags = s->flags;
            r->state[0] = c->s[0].st;
            r->state[1] = c->s[1].st;
            r->unexpected = (uint8_t)(c->trans_tail != NO_TRANS &&
                                      t->trans[c->trans_tail].pkt_no == s->pkt_no &&
                                      t->trans[c->trans_tail].how == 2);
            r->pad = 0;
            r->anomalies = anomalies;
            r->dup_ack_num = dup_ack_num;
        }
    }
}

void tracker_frame(void *ctx, uint32_t linktype, int64_t ts_ns, const uint8_t *data,
                   size_t caplen, uint32_t origlen) {
    Tracker *t = ctx;
    Segment s;
    if (t->stop) return; /* read -c reached (merged files: the merger still feeds frames) */
    t->frames++; /* every frame keeps its number in the file, matching or not */
    if (t->has_bpf) {
        const BpfInsn *prog = NULL;
        for (uint32_t i = 0; i < t->n_bpf && !prog; i++)
            if (t->bpf[i].linktype == linktype) prog = t->bpf[i].prog;
        if (!prog) { t->filter_inapplicable++; return; }
        if (!bpf_run(prog, data, origlen, (uint32_t)caplen)) { t->filtered++; return; }
    }
    if (t->max_packets && ++t->matched >= t->max_packets) t->stop = 1;
    int r = decode_frame(linktype, data, caplen, &s, t->verify_checksums);
    t->decoded[r]++;
    if (r != DEC_TCP) return;
    s.ts_ns = ts_ns;
    s.pkt_no = t->frames;
    tracker_segment(t, &s);
}

/* ---- end of a connection: close kind and Zeek conn_state --------------------------------- */

static uint8_t who_of(const Conn *c, int side0, int side1) {
    uint8_t w = 0;
    if (side0) w |= (c->orig == 0) ? WHO_CLIENT : WHO_SERVER;
    if (side1) w |= (c->orig == 1) ? WHO_CLIENT : WHO_SERVER;
    return w;
}

static void classify_close(Conn *c) {
    const Side *o = &c->s[c->orig], *r = &c->s[c->orig ^ 1];
    c->time_wait = who_of(c, c->s[0].st == TS_TIME_WAIT, c->s[1].st == TS_TIME_WAIT);
    c->reset_by = who_of(c, c->s[0].sent_rst, c->s[1].sent_rst);
    c->half_close = c->s[0].data_after_peer_fin || c->s[1].data_after_peer_fin;
    c->close_initiator = WHO_NONE;
    /* nothing the responder sent was for this connection (all of it, if anything, had an
     * unacceptable ACK), and nothing the client sent proves an answer */
    if (o->sent_syn && !o->sent_synack && r->st == ST_NONE && !r->sent_rst && !c->self_connect) {
        c->close_kind = CK_UNANSWERED;
        return;
    }
    if (o->sent_syn && !r->sent_synack && r->sent_rst && !r->sent_syn) {
        c->close_kind = CK_REFUSED;
        c->close_initiator = WHO_SERVER;
        return;
    }
    /* first and second FIN, by time */
    int first = -1;
    if (c->s[0].sent_fin && c->s[1].sent_fin)
        first = c->s[0].fin_pkt <= c->s[1].fin_pkt ? 0 : 1;
    else if (c->s[0].sent_fin) first = 0;
    else if (c->s[1].sent_fin) first = 1;
    /* Order by packet number, not time: times may be equal (or all zero). */
    uint64_t rst_pkt = 0;
    for (int i = 0; i < 2; i++)
        if (c->s[i].sent_rst && (!rst_pkt || c->s[i].rst_pkt < rst_pkt))
            rst_pkt = c->s[i].rst_pkt;
    int both_fin_acked = c->s[0].sent_fin && c->s[1].sent_fin && c->s[0].fin_acked_pkt &&
                         c->s[1].fin_acked_pkt;
    uint64_t done_pkt = 0;
    if (both_fin_acked)
        done_pkt = c->s[0].fin_acked_pkt > c->s[1].fin_acked_pkt ? c->s[0].fin_acked_pkt
                                                                 : c->s[1].fin_acked_pkt;
    if (rst_pkt && (!both_fin_acked || rst_pkt < done_pkt)) {
        c->close_kind = CK_RESET;
        /* who started the close: the first FIN's sender when a FIN came before the RST
         * (an abort then cut the close short), else the RST's sender */
        if (first >= 0 && c->s[first].fin_pkt < rst_pkt) {
            c->close_initiator = who_of(c, first == 0, first == 1);
        } else {
            int i0 = c->s[0].sent_rst && c->s[0].rst_pkt == rst_pkt;
            int i1 = c->s[1].sent_rst && c->s[1].rst_pkt == rst_pkt;
            c->close_initiator = who_of(c, i0, i1);
        }
        return;
    }
    if (first < 0) {
        c->close_kind = CK_OPEN;
        return;
    }
    const Side *second = &c->s[first ^ 1];
    if (!second->sent_fin) {
        c->close_kind = CK_INCOMPLETE;
        c->close_initiator = who_of(c, first == 0, first == 1);
        return;
    }
    if (!second->fin_acks_peer_fin) {
        c->close_kind = CK_SIMULTANEOUS;
        c->close_initiator = WHO_BOTH;
    } else {
        c->close_kind = second->peer_fin_acked_before_our_fin ? CK_FOUR_WAY : CK_THREE_WAY;
        c->close_initiator = who_of(c, first == 0, first == 1);
    }
    if (!both_fin_acked) c->close_kind = CK_INCOMPLETE;
}

/* Close kind and conn_state as of now: final once the connection is finished; before
 * that (a live capture) what they would be if the capture ended here. */
void conn_classify(Conn *c) {
    classify_close(c);
    c->conn_state = (uint8_t)zeek_conn_state(c);
}

void conn_finish(Tracker *t, Conn *c) {
    (void)t;
    if (c->finished) return;
    c->finished = 1;
    conn_classify(c);
}

void tracker_finish(Tracker *t) {
    if (!t->stream) {
        for (uint32_t i = 0; i < t->n_conns; i++) conn_finish(t, &t->conns[i]);
        return;
    }
    for (uint32_t h = t->live_head; h != NO_HANDLE; h = *link_next(t, h))
        if (!(h & PEND_BIT)) conn_finish(t, &t->conns[h]);
}

/* ---- streaming: writing out ------------------------------------------------------------------ */

static int push_done(Tracker *t, uint32_t h) {
    if (t->done_read == t->n_done) t->done_read = t->n_done = 0;
    else if (t->done_read > t->cap_done / 2) { /* slide the queue down */
        memmove(t->done, t->done + t->done_read, (t->n_done - t->done_read) * sizeof *t->done);
        t->n_done -= t->done_read;
        t->done_read = 0;
    }
    uint64_t cap = t->cap_done;
    if (grow(t, (void **)&t->done, &cap, (uint64_t)t->n_done + 1, sizeof *t->done)) return -1;
    t->cap_done = (uint32_t)cap;
    t->done[t->n_done++] = h;
    return 0;
}

/* Entry h is over: out of the flow table (a later packet of its 4-tuple would start a new
 * connection by conn_split_here anyway; a no-op when a later connection of the 4-tuple
 * holds the slot) and finished. */
static void mark_over(Tracker *t, uint32_t h) {
    unhash(t, h);
    if (h & PEND_BIT) t->pends[h & ~PEND_BIT].over = 1;
    else conn_finish(t, &t->conns[h]);
}

/* Take entry h, marked over, out of the list into the queue to write out. */
static void write_out(Tracker *t, uint32_t h) {
    live_unlink(t, h);
    push_done(t, h);
}

/* conn_over as a sweep asks it, without moving Zeek's timers: zeek_expired re-arms its
 * ExpireTimer from the time it is asked, so a sweep between two packets would change what
 * the next packet's conn_split_here decides (an in-memory read asks at packets only).
 * Over at a sweep is over at any later time (timers only fire), so both modes split alike. */
static int swept_over(const Tracker *t, Conn *c, int64_t now) {
    int64_t attempt = c->t_attempt, expire = c->t_expire;
    if (conn_over(t, c, now)) return 1;
    c->t_attempt = attempt;
    c->t_expire = expire;
    return 0;
}

/* Mark every entry over by now and queue those that can go: any (order_end) or those
 * before the first still open (by id). */
static void sweep(Tracker *t) {
    t->last_sweep = t->now;
    t->since_sweep = 0;
    int64_t now = t->now - t->skew;
    for (uint32_t h = t->live_head; h != NO_HANDLE;) {
        uint32_t next = *link_next(t, h);
        int over = marked_over(t, h);
        if (!over && (h & PEND_BIT ? pend_over(t, &t->pends[h & ~PEND_BIT], now)
                                   : swept_over(t, &t->conns[h], now))) {
            mark_over(t, h);
            over = 1;
        }
        t->swept_any |= over;
        if (over && (t->order_end || h == t->live_head)) write_out(t, h);
        h = next;
    }
    t->sweep_held = t->n_live;
}

long stream_take(Tracker *t, uint32_t *out, uint32_t limit, int final) {
    if (final && t->live_head != NO_HANDLE) {
        /* the end: the flow table goes whole, not entry by entry */
        memset(t->slots, 0, ((size_t)t->slot_mask + 1) * sizeof *t->slots);
        t->slot_used = 0;
        while (t->live_head != NO_HANDLE) {
            if (!marked_over(t, t->live_head)) mark_over(t, t->live_head);
            write_out(t, t->live_head);
        }
    }
    if (t->oom) return -1;
    uint32_t n = 0;
    while (n < limit && t->done_read < t->n_done) {
        uint32_t h = t->done[t->done_read];
        if (h & PEND_BIT) {
            Conn *c = replay_pend(t, h & ~PEND_BIT, NULL, 0);
            if (!c) return -1;
            conn_finish(t, c);
            h = (uint32_t)(c - t->conns);
        }
        t->done_read++;
        out[n++] = h;
    }
    return (long)n;
}

void stream_release(Tracker *t, const uint32_t *slots, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        Conn *c = &t->conns[slots[i]];
        if (c->trans_head != NO_TRANS) { /* its chain goes to the free list whole */
            t->trans[c->trans_tail].next = t->free_trans;
            t->free_trans = c->trans_head;
        }
        c->trans_head = c->trans_tail = NO_TRANS;
        free(c->hist_heap);
        c->hist_heap = NULL;
        c->live_next = t->free_conn;
        t->free_conn = slots[i];
        t->written++;
    }
}

uint64_t conn_zeek_size(const Conn *c, int role_orig) {
    int side = role_orig ? c->orig : c->orig ^ 1;
    return zeek_size(&c->s[side], &c->s[side ^ 1]);
}
