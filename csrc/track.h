#ifndef HS_TRACK_H
#define HS_TRACK_H
#include "engine.h"
#include "decode.h"
#include "bpf.h"

#define BPF_LINKTYPES 16 /* programs for this many link types at most */

/* Close kinds, in analyzer.records.CLOSE_KINDS order. */
enum { CK_OPEN = 0, CK_FOUR_WAY, CK_THREE_WAY, CK_SIMULTANEOUS, CK_RESET, CK_REFUSED,
       CK_UNANSWERED, CK_INCOMPLETE };
/* Who: a bit set of roles. */
enum { WHO_NONE = 0, WHO_CLIENT = 1, WHO_SERVER = 2, WHO_BOTH = 3 };
/* Zeek conn_state, in analyzer.records.CONN_STATES order. */
enum { CS_S0 = 0, CS_S1, CS_SF, CS_REJ, CS_S2, CS_S3, CS_RSTO, CS_RSTR, CS_RSTOS0, CS_RSTRH,
       CS_SH, CS_SHR, CS_OTH };

typedef struct {
    Conn *conns;
    uint32_t n_conns, cap_conns;
    uint32_t *slots;          /* open addressing: conn index + 1, 0 = empty */
    uint32_t slot_mask, slot_used;
    Transition *trans;
    uint32_t n_trans, cap_trans;
    PacketRow *rows;
    uint64_t n_rows, cap_rows;
    int64_t record_conn;      /* -1: no rows, -2: every TCP packet, else one conn id */
    uint8_t fsm[N_TCP_STATES * N_INPUTS];
    int verify_checksums;
    int zeek_timers;          /* split connections where Zeek would: its timers, IsReuse */
    uint8_t *likely_ports;    /* Zeek's likely_server_ports as a bitmap, or NULL for ours */
    int32_t port_filter;      /* -1: all ports */
    int64_t attempt_ns, close_ns, reset_ns, partial_close_ns, inactivity_ns;
    uint64_t decoded[DEC__COUNT];
    uint64_t frames, skipped_port, bad_checksum;
    uint32_t transitions_read; /* live readers: transitions already handed out */
    /* read -f: the filter compiled for each link type (absent: it does not apply) */
    struct { uint32_t linktype; uint32_t n; BpfInsn *prog; } bpf[BPF_LINKTYPES];
    uint32_t n_bpf;
    int has_bpf;
    uint64_t filtered, filter_inapplicable; /* frames the filter left out */
    uint64_t max_packets, matched; /* read -c: stop after max_packets matching frames */
    int stop;                      /* max_packets reached: the framer stops there */
    int oom;
    uint32_t n_ids;                /* connections so far: ids are given by first packet */
    /* When a connection is over (conn_over: closed and quiet for linger_ns, an attempt
     * quiet for syn_timeout_ns, open and quiet for idle_ns), a later packet of its
     * 4-tuple starts a new one. Streaming (stream = 1) also writes it out then and
     * reuses its memory: conns is a pool, entries are handles (a pool index, or
     * PEND_BIT | a pends index) linked in id order from live_head; the transitions of
     * connections written out are reused (free_trans). */
    int64_t linger_ns, syn_timeout_ns, idle_ns; /* idle_ns 0: an open one never is */
    int64_t now;                   /* the latest packet time */
    int64_t skew;                  /* the longest step back in time so far */
    int swept_any;                 /* a sweep found a connection over */
    uint64_t skew_late_pkt;        /* first packet stepping back further after that */
    int stream, order_end;         /* order_end: written out as they end, else by id */
    uint32_t live_head, live_tail, free_conn, free_pend;
    Pend *pends;
    uint32_t n_pends, cap_pends;
    uint32_t *done;                /* handles over, in output order, from done_read */
    uint32_t n_done, cap_done, done_read;
    uint32_t free_trans;           /* streaming: transitions free for reuse, by .next */
    uint64_t n_live, written, since_sweep, sweep_held; /* sweep_held: n_live after one */
    int64_t last_sweep;
    uint32_t sweep_every;          /* tests only: sweep every this many packets, whatever
                                    * the capture time (0: the normal schedule) */
} Tracker;

#define PEND_BIT 0x80000000u
#define NO_HANDLE UINT32_MAX

int tracker_init(Tracker *t, const uint8_t *fsm_table);
void tracker_free(Tracker *t);
void tracker_frame(void *ctx, uint32_t linktype, int64_t ts_ns, const uint8_t *data,
                   size_t caplen, uint32_t origlen);
void tracker_segment(Tracker *t, const Segment *seg);
void tracker_finish(Tracker *t);
void conn_finish(Tracker *t, Conn *c);
void conn_classify(Conn *c);
/* Does segment s start a new connection on c's 4-tuple (the one split rule)? 0: no;
 * SPLIT_NEW: s starts a new incarnation (a SYN with a new ISN, RFC 9293 3.4.1);
 * SPLIT_OVER: c was over before s came (conn_over), the rule a streamed read writes
 * connections out by, so it splits the 4-tuple as an in-memory read does. */
enum { SPLIT_NEW = 1, SPLIT_OVER = 2 /* c was over (conn_over) before s came */ };
int conn_split_here(Tracker *t, Conn *c, int from, const Segment *s);
/* Is c over at time `now` (a packet's time; a sweep's: the latest less the skew)? */
int conn_over(const Tracker *t, Conn *c, int64_t now);
/* Streaming: up to `limit` connections written out, as pool indexes in output order (the
 * caller fills its columns from them, then calls stream_release). With `final` (after
 * tracker_finish) every connection left is written out. Returns the number, -1 when out
 * of memory. */
long stream_take(Tracker *t, uint32_t *out, uint32_t limit, int final);
void stream_release(Tracker *t, const uint32_t *slots, uint32_t n);
#endif
