/* The connection record, built once: a batch of connections as typed columns.
 *
 * Every output (jsonl, json, csv, Zeek conn.log, the table, pandas, parquet, live events)
 * is a view of these columns, so a derived value (an RTT, a count of unexpected inputs,
 * the endpoint text) is computed here and nowhere else. Python receives each column as a
 * bytes object (the buffer protocol: numpy.frombuffer and pyarrow.py_buffer wrap it
 * without a copy) and hands the same dict back to render_batch() for the text formats.
 *
 * To add a field: one X() line below, one line in columns.c fill_row(), one in the
 * renderers there, and one in analyzer/results.py's record builder.
 */
#ifndef HS_COLUMNS_H
#define HS_COLUMNS_H
#include <stddef.h>
#include "track.h"

/* Fixed-width columns: name, struct/numpy type code, C type, values per row.
 * Nulls: times and durations INT64_MIN (pandas' NaT), ISNs and options -1. */
#define CONN_FIXED_COLUMNS(X)                                                            \
    X(id, "I", uint32_t, 1)                                                              \
    X(family, "B", uint8_t, 1)                                                           \
    X(client_port, "H", uint16_t, 1)                                                     \
    X(server_port, "H", uint16_t, 1)                                                     \
    X(first_packet, "Q", uint64_t, 1)                                                    \
    X(last_packet, "Q", uint64_t, 1)                                                     \
    X(start_ns, "q", int64_t, 1)                                                         \
    X(end_ns, "q", int64_t, 1)                                                           \
    X(duration_ns, "q", int64_t, 1)                                                      \
    X(packets_client, "Q", uint64_t, 1)                                                  \
    X(packets_server, "Q", uint64_t, 1)                                                  \
    X(payload_bytes_client, "Q", uint64_t, 1)                                            \
    X(payload_bytes_server, "Q", uint64_t, 1)                                            \
    X(ip_bytes_client, "Q", uint64_t, 1)                                                 \
    X(ip_bytes_server, "Q", uint64_t, 1)                                                 \
    X(conn_state, "B", uint8_t, 1)                                                       \
    X(handshake_complete, "?", uint8_t, 1)                                               \
    X(simultaneous_open, "?", uint8_t, 1)                                                \
    X(fast_open, "?", uint8_t, 1) /* the SYN-ACK acked data sent in the SYN (RFC 7413) */ \
    X(syn_retransmits, "I", uint32_t, 1)                                                 \
    X(synack_retransmits, "I", uint32_t, 1)                                              \
    X(client_isn, "q", int64_t, 1)                                                       \
    X(server_isn, "q", int64_t, 1)                                                       \
    X(first_syn_ns, "q", int64_t, 1)                                                     \
    X(syn_ns, "q", int64_t, 1)                                                           \
    X(synack_ns, "q", int64_t, 1)                                                        \
    X(synack_answered_ns, "q", int64_t, 1)                                               \
    X(ack_ns, "q", int64_t, 1)                                                           \
    X(irtt_ns, "q", int64_t, 1)                                                          \
    X(client_rtt_ns, "q", int64_t, 1)                                                    \
    X(server_rtt_ns, "q", int64_t, 1)                                                    \
    X(client_options, "?", uint8_t, 1)                                                   \
    X(client_mss, "i", int32_t, 1)                                                       \
    X(client_wscale, "b", int8_t, 1)                                                     \
    X(client_sack_permitted, "?", uint8_t, 1)                                            \
    X(client_timestamps, "?", uint8_t, 1)                                                \
    X(server_options, "?", uint8_t, 1)                                                   \
    X(server_mss, "i", int32_t, 1)                                                       \
    X(server_wscale, "b", int8_t, 1)                                                     \
    X(server_sack_permitted, "?", uint8_t, 1)                                            \
    X(server_timestamps, "?", uint8_t, 1)                                                \
    X(close_kind, "B", uint8_t, 1)                                                       \
    X(close_initiator, "B", uint8_t, 1)                                                  \
    X(close_reset_by, "B", uint8_t, 1)                                                   \
    X(close_half_close, "?", uint8_t, 1)                                                 \
    X(close_time_wait, "B", uint8_t, 1)                                                  \
    X(client_state, "b", int8_t, 1)                                                      \
    X(server_state, "b", int8_t, 1)                                                      \
    X(roles_guessed, "?", uint8_t, 1)                                                    \
    X(flipped, "?", uint8_t, 1)                                                          \
    X(unexpected, "I", uint32_t, 1)                                                      \
    X(zeek_orig_bytes, "Q", uint64_t, 1)                                                 \
    X(zeek_resp_bytes, "Q", uint64_t, 1)                                                 \
    X(zeek_orig_pkts, "Q", uint64_t, 1)                                                  \
    X(zeek_resp_pkts, "Q", uint64_t, 1)                                                  \
    X(zeek_orig_ip_bytes, "Q", uint64_t, 1)                                              \
    X(zeek_resp_ip_bytes, "Q", uint64_t, 1)                                              \
    X(zeek_duration_ns, "q", int64_t, 1)                                                 \
    X(anomalies, "I", uint32_t, AN__COUNT)

/* Text columns, Arrow's layout: <name> is the UTF-8 data, <name>.offsets n + 1 int32. */
#define CONN_STRING_COLUMNS(X)                                                           \
    X(client) X(server) X(client_ip) X(server_ip) X(history)                             \
    X(client_states) X(server_states) /* each endpoint's states in order, space separated */

/* Every endpoint state change (and unexpected input) of the batch's connections, in
 * order: connection k's are rows trans.offsets[k] .. trans.offsets[k + 1]. */
#define TRANS_COLUMNS(X)                                                                 \
    X(role, "B", uint8_t, 1)   /* 0 client, 1 server */                                 \
    X(state, "B", uint8_t, 1)                                                            \
    X(ts_ns, "q", int64_t, 1)                                                            \
    X(packet, "Q", uint64_t, 1)                                                          \
    X(how, "B", uint8_t, 1)    /* HOW_NORMAL, HOW_INFERRED, HOW_UNEXPECTED */           \
    X(input, "b", int8_t, 1)   /* -1: an initial state */

#define DECL_PTR(name, code, type, per) type *name;
#define DECL_STR(name) int32_t *name##_off; char *name;
typedef struct {
    size_t n;
    CONN_FIXED_COLUMNS(DECL_PTR)
    CONN_STRING_COLUMNS(DECL_STR)
    int32_t *trans_off;
    struct { TRANS_COLUMNS(DECL_PTR) } tr;
} ConnCols;
#undef DECL_PTR
#undef DECL_STR

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

enum { COLS_N_STRINGS = 7 };

/* Names shared with Python (analyzer.records hands them over once: engine_set_names). */
extern const char *NAMES_STATE[], *NAMES_INPUT[], *NAMES_CS[], *NAMES_CK[], *NAMES_ANOMALY[];

/* Transitions of the connections list[0 .. n) that an output shows (not retracted). */
size_t cols_trans_count(const Tracker *t, Conn *const *list, size_t n);
/* Fill the fixed and transition columns (already sized) of the connections list[0 .. p->n) and append the text columns to
 * str[] (offsets written to the *_off arrays). Unfinished connections are classified
 * as of now (a live capture). Returns -1 when out of memory. */
int cols_fill(Tracker *t, Conn *const *list, ConnCols *p, Buf str[COLS_N_STRINGS]);

enum { RENDER_JSONL = 0, RENDER_CSV = 1, RENDER_ZEEK = 2 };
/* Rows of a batch as text. tag: a "file" value added to each row (jsonl, csv), or NULL;
 * uid_seed: what Zeek uids are made from (the capture's path). -1 when out of memory. */
int render_batch(const ConnCols *p, int fmt, const char *tag, size_t tag_len,
                 const char *uid_seed, size_t seed_len, Buf *out);
int buf_reserve(Buf *b, size_t more);
#endif
