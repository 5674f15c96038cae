/* Per-packet TCP anomalies, with Wireshark's definitions and precedence, re-implemented
 * from epan/dissectors/packet-tcp.c (tcp_analyze_sequence_number, verify_tcp_window_scaling
 * and the reused-ports check in dissect_tcp) so that `tshark -e tcp.analysis.*` and this
 * engine flag the same packets. The order of the checks below is Wireshark's: it decides
 * which flag wins (a zero window probe is nothing else, a keep-alive is never a
 * retransmission, a spurious retransmission is not also fast or out of order, ...).
 * Sequence numbers are absolute, and 0 means "not seen yet", as in Wireshark. */
#include <string.h>
#include "anomaly.h"

#define NS_PER_MS 1000000ll
#define BIT(k) (1u << (k))

static inline int gt_seq(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }
static inline int lt_seq(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static inline int le_seq(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }

/* verify_tcp_window_scaling, run on every SYN after its options. */
static void window_scaling(AnomSide *fwd, AnomSide *rev, const Segment *s) {
    if (s->wscale >= 0) fwd->wscale = (uint8_t)((s->wscale > 14 ? 14 : s->wscale) + 2);
    if (fwd->wscale == 0) {        /* no option: neither side scales */
        fwd->wscale = rev->wscale = 1;
    } else if ((s->flags & F_ACK) && rev->wscale == 1) {
        fwd->wscale = 1;           /* the SYN offered no scaling: the SYN-ACK's is moot */
    }
}

void anomaly_save(AnomCarry *k, const Conn *old) {
    for (int i = 0; i < 2; i++) {
        k->an[i] = old->s[i].an;
        memset(k->an[i].count, 0, sizeof k->an[i].count);
    }
    k->syn_ts = old->an_syn_ts;
    k->first_rtt = old->an_first_rtt;
    k->syn_seen = old->an_syn_seen;
}

void anomaly_restore(Conn *c, const AnomCarry *k) {
    for (int i = 0; i < 2; i++) c->s[i].an = k->an[i];
    c->an_syn_ts = k->syn_ts;
    c->an_first_rtt = k->first_rtt;
    c->an_syn_seen = k->syn_seen;
}

uint32_t anomaly_segment(Conn *c, int from, const Segment *s, uint32_t *dup_ack_num) {
    AnomSide *fwd = &c->s[from].an, *rev = &c->s[from ^ 1].an;
    uint32_t seq = s->seq, ack = s->ack, seglen = s->payload_len, window = s->win;
    uint8_t fl = s->flags;
    int sfr = fl & (F_SYN | F_FIN | F_RST);
    int64_t now = s->ts_ns;
    uint32_t a = 0;
    *dup_ack_num = 0;

    /* PORTS REUSED: a SYN with another ISN than this direction's starts a new
     * conversation for Wireshark (fresh analysis), whatever this engine does with the
     * connection. A SYN-ACK with another ISN is flagged too, but Wireshark only moves
     * that direction's base: the analysis goes on (so its first segment may be "after
     * a segment not captured" and the ACK of it "ACKed unseen"). */
    if ((fl & (F_SYN | F_ACK)) == (F_SYN | F_ACK) && fwd->base_set && seq != fwd->base_seq) {
        fwd->base_seq = seq;
        a |= BIT(AN_REUSED_PORTS);
    } else if ((fl & F_SYN) && fwd->base_set && seq != fwd->base_seq) {
        for (int i = 0; i < 2; i++) {
            AnomSide *e = &c->s[i].an;
            uint32_t keep[AN__COUNT];
            memcpy(keep, e->count, sizeof keep);
            memset(e, 0, sizeof *e);
            memcpy(e->count, keep, sizeof keep);
        }
        c->an_syn_seen = 0;
        c->an_first_rtt = 0;
        a |= BIT(AN_REUSED_PORTS);
    }
    if (!fwd->base_set) {
        fwd->base_seq = (fl & F_SYN) ? seq : seq - 1;
        fwd->base_set = 1;
    }
    if (!rev->base_set && (fl & F_ACK)) {
        rev->base_seq = ack - 1;
        rev->base_set = 1;
    }
    if (fl & F_SYN) window_scaling(fwd, rev, s);


    /* ZERO WINDOW PROBE: one byte at the next expected seq into a zero window. */
    if (seglen == 1 && seq == fwd->nextseq && rev->window == 0) {
        a |= BIT(AN_ZERO_WINDOW_PROBE);
        goto finished_fwd;
    }
    if (window == 0 && !sfr) a |= BIT(AN_ZERO_WINDOW);
    /* LOST: beyond the highest seq seen, so something before it was not captured. */
    if (fwd->nextseq && gt_seq(seq, fwd->nextseq) && !(fl & F_RST)) a |= BIT(AN_LOST_SEGMENT);
    /* KEEP ALIVE: 0 or 1 byte, one before the next expected seq. */
    if (seglen <= 1 && seq == fwd->nextseq - 1 && !sfr) a |= BIT(AN_KEEP_ALIVE);
    if (seglen == 0 && window && window != fwd->window && seq == fwd->nextseq &&
        ack == fwd->lastack && !sfr)
        a |= BIT(AN_WINDOW_UPDATE);
    /* WINDOW FULL: data up to the right edge of the peer's advertised window. */
    if (seglen > 0 && rev->wscale != 0 && !sfr) {
        uint32_t shift = (rev->window_from_syn || rev->wscale == 1) ? 0 : rev->wscale - 2u;
        if (seq + seglen == rev->lastack + ((uint32_t)rev->window << shift))
            a |= BIT(AN_WINDOW_FULL);
    }
    if (seglen == 0 && window && window == fwd->window && seq == fwd->nextseq &&
        ack == fwd->lastack && (rev->lastflags & BIT(AN_KEEP_ALIVE)) && !sfr) {
        a |= BIT(AN_KEEP_ALIVE_ACK);
        goto finished_fwd;
    }
    if (seglen == 0 && window == 0 && window == fwd->window && seq == fwd->nextseq &&
        ack == fwd->lastack && (rev->lastflags & BIT(AN_ZERO_WINDOW_PROBE)) && !sfr) {
        a |= BIT(AN_ZERO_WINDOW_PROBE_ACK);
        goto finished_fwd;
    }
    /* DUPLICATE ACK: nothing new at all (window, seq and ack as before), no data. */
    if (seglen == 0 && window && window == fwd->window && seq == fwd->nextseq &&
        ack == fwd->lastack && !sfr) {
        fwd->dupacknum = fwd->dupacknum == -1 ? 1 : fwd->dupacknum + 1;
        a |= BIT(AN_DUPLICATE_ACK);
        *dup_ack_num = (uint32_t)fwd->dupacknum;
    }

finished_fwd:
    if (ack != fwd->lastack) fwd->dupacknum = 0;

    /* ACKED LOST: this acknowledges data of the other direction never captured. Once per
     * gap, as tshark 4.0: a hole below the highest seq seen is reported once (the mark
     * moves up to that seq); an ACK beyond everything seen is reported once until the
     * other direction changes its own ACK (its dupacknum, set to -1 here, stands for
     * "already reported", and a duplicate ACK of its own turns it back into 1). */
    if (rev->maxseqtobeacked && gt_seq(ack, rev->maxseqtobeacked) && (fl & F_ACK)) {
        if (lt_seq(rev->maxseqtobeacked, rev->nextseq)) {
            rev->maxseqtobeacked = rev->nextseq;
            a |= BIT(AN_ACK_LOST_SEGMENT);
        } else {
            if (rev->dupacknum == 0) a |= BIT(AN_ACK_LOST_SEGMENT);
            rev->dupacknum = -1;
        }
    }

    /* RETRANSMISSION / FAST RETRANSMISSION / SPURIOUS / OUT-OF-ORDER */
    if (seglen > 0 || (fl & (F_SYN | F_FIN))) {
        int not_advanced = fwd->nextseq && lt_seq(seq, fwd->nextseq);
        if (a & BIT(AN_KEEP_ALIVE)) goto finished_retransmission;
        /* more than one byte right after a possible zero window probe is new data */
        if (seglen > 1 && fwd->nextseq - 1 == seq) not_advanced = 0;
        if (seglen > 0 && rev->lastack && le_seq(seq + seglen, rev->lastack)) {
            a |= BIT(AN_SPURIOUS_RETRANSMISSION); /* the data was acknowledged already */
            goto finished_retransmission;
        }
        /* >= 2 duplicate ACKs asked for exactly this seq, less than 20 ms ago */
        if (not_advanced && rev->dupacknum >= 2 && rev->lastack == seq &&
            (uint64_t)(now - rev->lastack_ts) < 20 * NS_PER_MS) {
            a |= BIT(AN_FAST_RETRANSMISSION);
            goto finished_retransmission;
        }
        /* soon after the highest seq (within the first RTT, or 3 ms), not a resend */
        /* (unsigned, as Wireshark's: time running backwards is never "soon") */
        uint64_t ooo = (uint64_t)(c->an_first_rtt ? c->an_first_rtt : 3 * NS_PER_MS);
        if (not_advanced && (uint64_t)(now - fwd->nextseq_ts) < ooo &&
            fwd->nextseq != seq + seglen + ((fl & (F_SYN | F_FIN)) ? 1u : 0u)) {
            a |= BIT(AN_OUT_OF_ORDER);
            goto finished_retransmission;
        }
        if (not_advanced) a |= BIT(AN_RETRANSMISSION);
    }

finished_retransmission:;
    /* tshark sets tcp.analysis.retransmission on fast and spurious retransmissions too
     * (their expert info is added with the generic one): the bits are its fields. */
    if (a & (BIT(AN_FAST_RETRANSMISSION) | BIT(AN_SPURIOUS_RETRANSMISSION)))
        a |= BIT(AN_RETRANSMISSION);
    uint32_t nextseq = seq + seglen;
    if ((seglen || (fl & (F_SYN | F_FIN))) && (fl & (F_SYN | F_FIN))) nextseq += 1;
    if ((gt_seq(nextseq, fwd->nextseq) || !fwd->nextseq) && !(a & BIT(AN_ZERO_WINDOW_PROBE))) {
        fwd->nextseq = nextseq;
        fwd->nextseq_ts = now;
    }
    if ((seq == fwd->maxseqtobeacked || !fwd->maxseqtobeacked) &&
        !(a & BIT(AN_ZERO_WINDOW_PROBE)))
        fwd->maxseqtobeacked = fwd->nextseq;
    /* A SYN again (same ISN): tshark 4.0 takes this direction back to the end of what it
     * sent without a hole, so a jump (a RST far ahead, a segment after a gap) is
     * forgotten; a SYN-ACK again is not (measured with tshark 4.0.17). */
    if ((fl & (F_SYN | F_ACK)) == F_SYN && fwd->maxseqtobeacked)
        fwd->nextseq = fwd->maxseqtobeacked;
    /* The first RTT (Wireshark's iRTT): SYN to the first segment with ACK and no SYN.
     * Wireshark takes it after analysing that segment, so the segment itself is still
     * judged with the 3 ms out-of-order threshold. */
    if ((fl & (F_SYN | F_ACK)) == F_SYN) c->an_syn_ts = now, c->an_syn_seen = 1;
    else if ((fl & (F_SYN | F_ACK)) == F_ACK && c->an_syn_seen && !c->an_first_rtt)
        c->an_first_rtt = now - c->an_syn_ts;
    fwd->window = (uint16_t)window;
    fwd->window_from_syn = (fl & F_SYN) != 0;
    fwd->lastack = ack;
    fwd->lastack_ts = now;
    fwd->lastflags = (uint16_t)a;
    for (uint32_t bits = a; bits; bits &= bits - 1) fwd->count[__builtin_ctz(bits)]++;
    return a;
}
