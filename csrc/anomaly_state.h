/* State of the per-packet TCP anomaly analysis (anomaly.c), with Wireshark's definitions (epan/dissectors/packet-tcp.c,
 * tcp_analyze_sequence_number and the reused-ports check of dissect_tcp).
 * The bit order is analyzer.anomalies.Anomaly's (tests/test_anomalies.py checks it). */
#ifndef HS_ANOMALY_STATE_H
#define HS_ANOMALY_STATE_H
#include <stdint.h>

enum {
    AN_RETRANSMISSION = 0,
    AN_FAST_RETRANSMISSION,
    AN_SPURIOUS_RETRANSMISSION,
    AN_OUT_OF_ORDER,
    AN_LOST_SEGMENT,        /* "previous segment not captured" */
    AN_ACK_LOST_SEGMENT,    /* "ACKed unseen segment" */
    AN_DUPLICATE_ACK,
    AN_ZERO_WINDOW,
    AN_ZERO_WINDOW_PROBE,
    AN_ZERO_WINDOW_PROBE_ACK,
    AN_KEEP_ALIVE,
    AN_KEEP_ALIVE_ACK,
    AN_WINDOW_FULL,
    AN_WINDOW_UPDATE,
    AN_REUSED_PORTS,
    AN__COUNT
};

/* One direction of Wireshark's tcp_analysis (struct tcp_flow + tcp_analyze_seq_info). */
typedef struct {
    uint32_t base_seq;
    uint32_t nextseq;          /* 0 = not seen yet, as in Wireshark */
    uint32_t maxseqtobeacked;
    uint32_t lastack;
    int64_t nextseq_ts, lastack_ts;
    int32_t dupacknum;         /* -1: an ACK of an unseen segment came (Wireshark's value) */
    uint16_t window;           /* last raw window */
    uint16_t lastflags;        /* anomaly bits of this direction's last segment */
    uint8_t wscale;            /* 0 unknown (Wireshark -1), 1 not used (-2), else shift + 2 */
    uint8_t base_set, window_from_syn;
    uint32_t count[AN__COUNT]; /* per connection totals, this direction's segments */
} AnomSide;

#endif
