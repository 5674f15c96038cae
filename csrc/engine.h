/* handshake-analyzer compiled core: shared types.
 *
 * framing.c  walks pcap / pcapng records in a byte buffer (no I/O),
 * decode.c   turns one link-layer frame into a Segment,
 * track.c    keeps the flow table and every connection's state,
 * module.c   is the Python binding.
 *
 * The RFC 9293 transition table is not here: Python's analyzer.fsm builds it and
 * hands it over as bytes (tracker.fsm_table).
 */
#ifndef HS_ENGINE_H
#define HS_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include "anomaly_state.h"

/* TCP header flag bits (RFC 9293 section 3.1). */
enum { F_FIN = 0x01, F_SYN = 0x02, F_RST = 0x04, F_PSH = 0x08, F_ACK = 0x10,
       F_URG = 0x20, F_ECE = 0x40, F_CWR = 0x80 };

#define N_TCP_STATES 11
#define N_INPUTS 10
#define ST_NONE 0xFF /* endpoint not seen yet: state unknown */
/* "No time yet". Not 0: a capture may start at the epoch or carry no times at all. */
#define TS_UNSET INT64_MIN
#define NO_TRANS UINT32_MAX
/* Packet times lie in [TS_MIN, TS_MAX] = 0 .. 2^62 ns (1970-01-01 .. 2116-02-20). Classic
 * pcap cannot express any other time; a corrupt pcapng if_tsoffset/if_tsresol, tshark or a
 * caller of feed_segment can, and such a time is clamped to the nearer end (the framer
 * counts it, analyzer warns with the first packet's number). Inside the range the
 * difference of any two times, and a time plus any timer, fit in an int64. */
#define TS_MIN ((int64_t)0)
#define TS_MAX ((int64_t)1 << 62)
static inline int64_t ts_clamp(int64_t ts) {
    return ts > TS_MAX ? TS_MAX : ts < TS_MIN ? TS_MIN : ts;
}
/* Inputs, in analyzer.fsm.Input order. */
enum { IN_SEND_SYN, IN_SEND_SYN_ACK, IN_SEND_FIN, IN_SEND_RST, IN_RECV_SYN, IN_RECV_SYN_ACK,
       IN_RECV_ACK_OF_SYN, IN_RECV_FIN, IN_RECV_ACK_OF_FIN, IN_RECV_RST };
/* States, in analyzer.fsm.TcpState order (only those the tracker names). */
enum { TS_CLOSED = 0, TS_LISTEN = 1, TS_SYN_SENT = 2, TS_SYN_RECEIVED = 3,
       TS_ESTABLISHED = 4, TS_FIN_WAIT_1 = 5, TS_CLOSE_WAIT = 7, TS_CLOSING = 8,
       TS_TIME_WAIT = 10 };
/* Transition.how */
enum { HOW_NORMAL = 0, HOW_INFERRED = 1, HOW_UNEXPECTED = 2,
       HOW_RETRACTED = 3 /* undone by a later packet: left out of every output */ };

/* Zeek's TCP endpoint states (analyzer/protocol/tcp/TCP_Endpoint.h). */
enum { Z_INACTIVE = 0, Z_SYN_SENT, Z_SYN_ACK_SENT, Z_PARTIAL, Z_ESTABLISHED, Z_CLOSED,
       Z_RESET };

typedef struct {
    int64_t ts_ns;       /* packet time, nanoseconds since the epoch */
    uint64_t pkt_no;     /* 1-based packet number in the capture */
    uint8_t family;      /* 4 or 6 */
    uint8_t src[16], dst[16];
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;
    uint8_t csum_bad;    /* 1 when checksums are verified and this one is wrong */
    uint16_t win;
    uint32_t payload_len; /* from the IP length fields: padding is not data */
    uint32_t ip_len;      /* IP total length (header + payload) */
    /* TCP options, parsed for SYN segments only (lazy for everything else). */
    int32_t mss;          /* -1 when absent */
    int16_t wscale;       /* -1 when absent */
    uint8_t sack_ok, ts_present;
    uint8_t payload_cut;  /* the capture holds less than the whole payload */
} Segment;

/* One state change of one endpoint: kept in a global array, linked per connection. */
typedef struct {
    int64_t ts_ns;
    uint64_t pkt_no;
    uint32_t next;        /* next transition of the same connection, or UINT32_MAX */
    uint32_t conn;        /* the connection's index (live readers drain in order) */
    uint8_t side;         /* key side (0 or 1), mapped to client/server at output */
    uint8_t state;        /* TcpState */
    uint8_t how;          /* 0 normal, 1 inferred (an initial state, or proved by a later
                           * packet: a SYN-ACK not captured), 2 unexpected input */
    uint8_t input;        /* the Input that caused it (or 0xFF for an initial state) */
} Transition;

/* A per-packet row, recorded only when asked (show, Capture.packets). */
typedef struct {
    uint64_t pkt_no;
    int64_t ts_ns;
    uint32_t conn;
    uint32_t seq, ack, len;
    uint16_t win;
    uint8_t from_side, flags;
    uint8_t state[2];     /* both key sides' TcpState after the packet */
    uint8_t unexpected;   /* an input of this packet was unexpected */
    uint8_t pad;
    uint32_t anomalies;   /* Wireshark's analysis flags, 1 << AN_* (anomaly.c) */
    uint32_t dup_ack_num; /* Wireshark's duplicate ACK number, 0 if none */
} PacketRow;

typedef struct {
    /* RFC view */
    uint8_t st;               /* TcpState or ST_NONE */
    uint8_t sent_syn, sent_fin, sent_rst, sent_synack;
    uint32_t isn;             /* seq of the first SYN / SYN-ACK */
    uint32_t syn_end;         /* seq after our SYN: what an ACK of it carries */
    uint32_t fin_end;         /* seq after our FIN */
    uint32_t syn_count, synack_count;
    int64_t first_syn_ts, last_syn_ts;   /* SYN (or SYN-ACK) sent by this side */
    uint64_t last_syn_pkt;
    int64_t fin_ts, fin_acked_ts, rst_ts;
    uint64_t fin_pkt, fin_acked_pkt, rst_pkt; /* packet numbers: 0 = not yet */
    uint32_t nxt;              /* highest sequence number sent so far, plus one */
    uint8_t have_nxt;
    /* The peer's FIN was applied to this endpoint (-> CLOSE_WAIT) before the endpoint
     * was seen to receive it: the transition to retract if its own FIN proves it had
     * not (a simultaneous close, RFC 9293 figure 13). NO_TRANS when confirmed. */
    uint32_t recv_fin_trans;
    uint8_t before_recv_fin;   /* the state that transition left */
    uint8_t data_after_peer_fin;
    /* In SYN-SENT this endpoint was sent an unacceptable ACK: a RST with SEQ=that ACK is
     * its answer (RFC 9293 3.10.7.3 first), not an abort. */
    uint8_t rst_answer_pending;
    uint32_t rst_answer_seq;
    uint8_t fin_acks_peer_fin; /* our first FIN acknowledged the peer's FIN */
    uint8_t peer_fin_acked_before_our_fin;
    /* options from our SYN / SYN-ACK */
    int32_t mss; int16_t wscale; uint8_t sack_ok, ts_ok, have_opts;
    /* counters */
    uint64_t pkts, payload, ip_bytes;
    /* Zeek view (TCP_Endpoint): state, sequence space with wrap counters, repeats */
    uint8_t z, zprev, did_close;
    uint32_t fin_cnt;
    int64_t z_start;
    uint32_t z_last, z_last_wraps, z_ack, z_ack_wraps;
    uint64_t hist_last_syn, hist_last_fin, hist_last_rst;
    uint32_t chk_cnt, chk_thresh, rxmt_cnt, rxmt_thresh;
    uint64_t z_pkts, z_ip_bytes;   /* ConnSize: packets that reached TCP analysis */
    AnomSide an;                   /* Wireshark's per-direction analysis (anomaly.c) */
    /* Zeek's zero windows and content gaps (zeek.c: history w/W, g/G). The reassembler is
     * reduced to what finds gaps: delivered up to rs_last, acked up to rs_trim, and a
     * few blocks of data above a hole (relative sequence numbers, as Zeek's). */
    uint32_t win0_cnt, win0_thresh, gap_cnt, gap_thresh;
    uint64_t fin_seq, rs_last, rs_trim;
    uint64_t blk_lo[4], blk_hi[4];
    uint8_t n_blk, rs_skip;
} Side;

typedef struct {
    uint8_t family;
    uint8_t addr[2][16];
    uint16_t port[2];
    uint32_t id;
    uint8_t orig;             /* key side that is the client / Zeek originator */
    uint8_t roles_guessed;    /* no SYN decided the client */
    uint8_t flipped;
    uint8_t simultaneous_open;
    uint8_t fast_open;        /* the SYN-ACK acknowledged data sent in the SYN (RFC 7413) */
    uint8_t finished;
    uint8_t close_kind, close_initiator, reset_by, time_wait;
    uint8_t half_close;
    uint8_t conn_state;       /* Zeek conn_state code, set when finished */
    uint8_t hs_complete;
    uint64_t first_pkt, last_pkt;
    int64_t first_ts, last_ts;
    /* Handshake times, TS_UNSET when not seen: the SYN answered, the first SYN-ACK
     * answering it, the SYN-ACK the completing ACK answered, and that ACK. */
    int64_t hs_syn_ts, hs_synack_ts, hs_synack_last_ts, hs_ack_ts, hs_first_syn_ts;
    uint64_t hs_synack_pkt;   /* the packet of hs_synack_ts */
    uint8_t self_connect;     /* one socket connected to itself: src == dst */
    uint32_t unexpected;      /* inputs the table calls unexpected */
    uint32_t trans_head, trans_tail;
    Side s[2];
    /* Zeek view (Connection / TCPSessionAdapter) */
    uint32_t hist_seen;       /* once-only history bits: originator low, responder << 16 */
    uint8_t z_active;         /* TCPSessionAdapter::is_active */
    uint8_t z_inactivity_long; /* tcp_inactivity_timeout in force (else udp's 60 s) */
    int64_t z_last_time;      /* Conn::last_time: frozen once both sides did_close */
    int64_t t_attempt, t_expire, t_delete; /* pending timers, 0 = none */
    char *hist_heap;          /* Zeek history when longer than hist_inline, else NULL */
    uint16_t hist_len, hist_cap;
    char hist_inline[24];
    uint8_t z_partial, z_first_seen; /* TCPSessionAdapter::is_partial, first_packet_seen */
    int64_t an_syn_ts, an_first_rtt; /* Wireshark's last SYN time and iRTT (anomaly.c) */
    uint8_t an_syn_seen;
    uint32_t live_prev, live_next; /* streaming: the entries in id order (track.c) */
} Conn;

/* Streaming: a connection seen in one bare SYN so far (a SYN flood is millions of them)
 * is kept as that segment, 10x smaller than a Conn; its second packet, or its write-out,
 * replays the SYN into a Conn first, so the results are those of the Conn. */
typedef struct {
    Segment seg;
    uint32_t id;
    uint32_t live_prev, live_next;
    uint8_t over;                  /* written out: no longer in the flow table */
} Pend;

/* The history string: the array of connections moves, so no pointer into it is kept. */
static inline char *conn_hist(Conn *c) { return c->hist_heap ? c->hist_heap : c->hist_inline; }
static inline const char *conn_hist_c(const Conn *c) {
    return c->hist_heap ? c->hist_heap : c->hist_inline;
}

#endif
