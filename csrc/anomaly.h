/* Per-packet TCP anomalies with Wireshark's definitions (anomaly.c). */
#ifndef HS_ANOMALY_H
#define HS_ANOMALY_H
#include "engine.h"

/* Analyse one segment sent by key side `from` of `c`. Returns the anomaly bits
 * (1 << AN_*) and sets *dup_ack_num (0 when not a duplicate ACK). */
uint32_t anomaly_segment(Conn *c, int from, const Segment *s, uint32_t *dup_ack_num);

/* Wireshark splits a conversation only on a SYN with a new ISN (anomaly_segment sees
 * it), where this engine follows Zeek (a SYN after a close, idle timeouts): so when the
 * engine starts a new connection on the same ports, the analysis state carries over
 * (the per-connection counts do not). */
typedef struct {
    AnomSide an[2];
    int64_t syn_ts, first_rtt;
    uint8_t syn_seen;
} AnomCarry;
void anomaly_save(AnomCarry *k, const Conn *old);
void anomaly_restore(Conn *c, const AnomCarry *k);
#endif
