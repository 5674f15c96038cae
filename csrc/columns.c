/* The connection record as columns (columns.h), and the text formats written from them.
 *
 * fill_row() is the only code that turns a tracked connection into record fields; the
 * renderers below and every Python view read the columns it fills. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "columns.h"
#include "zeek.h"

uint64_t conn_zeek_size(const Conn *c, int role_orig);

const char *NAMES_STATE[N_TCP_STATES], *NAMES_INPUT[N_INPUTS], *NAMES_CS[13], *NAMES_CK[8],
    *NAMES_ANOMALY[AN__COUNT];

/* ---- growing buffer with fast appenders (no printf in the hot path) ---- */

int buf_reserve(Buf *b, size_t more) {
    if (b->len + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

/* Callers reserve first; these never grow the buffer. */
static inline void put_raw(Buf *b, const char *s, size_t n) {
    memcpy(b->data + b->len, s, n);
    b->len += n;
}
#define PUT_LIT(b, lit) put_raw((b), (lit), sizeof(lit) - 1)
static inline void put_s(Buf *b, const char *s) { put_raw(b, s, strlen(s)); }
static inline void put_c(Buf *b, char ch) { b->data[b->len++] = ch; }

static inline void put_u64(Buf *b, uint64_t v) {
    char tmp[24];
    int k = 0;
    do { tmp[k++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (k) b->data[b->len++] = tmp[--k];
}

static inline void put_i64(Buf *b, int64_t v) {
    if (v < 0) { put_c(b, '-'); put_u64(b, 0 - (uint64_t)v); }
    else put_u64(b, (uint64_t)v);
}

/* Exact seconds from integer nanoseconds: parses to the correctly rounded float. */
static inline void put_secs(Buf *b, int64_t ns) {
    uint64_t a = ns < 0 ? 0 - (uint64_t)ns : (uint64_t)ns; /* no overflow at INT64_MIN */
    if (ns < 0) put_c(b, '-');
    put_u64(b, a / 1000000000ull);
    put_c(b, '.');
    uint64_t frac = a % 1000000000ull;
    for (uint64_t d = 100000000ull; d; d /= 10) put_c(b, (char)('0' + frac / d % 10));
}

static inline void put_bool(Buf *b, int v, int json) {
    if (json) { if (v) PUT_LIT(b, "true"); else PUT_LIT(b, "false"); }
    else { if (v) PUT_LIT(b, "True"); else PUT_LIT(b, "False"); }
}

/* ---- filling ---- */

static int strings_add(Buf *s, int32_t *off, size_t i, const char *txt, size_t n) {
    if (buf_reserve(s, n)) return -1;
    put_raw(s, txt, n);
    off[i + 1] = (int32_t)s->len;
    return 0;
}

size_t cols_trans_count(const Tracker *t, Conn *const *list, size_t n) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        for (uint32_t k = list[i]->trans_head; k != NO_TRANS; k = t->trans[k].next)
            total += t->trans[k].how != HOW_RETRACTED;
    return total;
}

static int64_t delta(int64_t later, int64_t earlier) {
    return later == TS_UNSET || earlier == TS_UNSET ? TS_UNSET : later - earlier;
}

static void fill_opts(const Side *e, uint8_t *have, int32_t *mss, int8_t *wscale,
                      uint8_t *sack, uint8_t *ts) {
    *have = e->have_opts;
    *mss = e->have_opts && e->mss >= 0 ? e->mss : -1;
    *wscale = e->have_opts && e->wscale >= 0 ? (int8_t)e->wscale : -1;
    *sack = e->have_opts && e->sack_ok;
    *ts = e->have_opts && e->ts_ok;
}

static void fill_row(const Tracker *t, const Conn *c, ConnCols *p, size_t i, size_t *tr_at) {
    const Side *o = &c->s[c->orig], *r = &c->s[c->orig ^ 1];
    p->id[i] = c->id;
    p->family[i] = c->family;
    p->client_port[i] = c->port[c->orig];
    p->server_port[i] = c->port[c->orig ^ 1];
    p->first_packet[i] = c->first_pkt;
    p->last_packet[i] = c->last_pkt;
    p->start_ns[i] = c->first_ts;
    p->end_ns[i] = c->last_ts;
    p->duration_ns[i] = c->last_ts - c->first_ts;
    p->packets_client[i] = o->pkts;
    p->packets_server[i] = r->pkts;
    p->payload_bytes_client[i] = o->payload;
    p->payload_bytes_server[i] = r->payload;
    p->ip_bytes_client[i] = o->ip_bytes;
    p->ip_bytes_server[i] = r->ip_bytes;
    p->conn_state[i] = c->conn_state;
    p->handshake_complete[i] = c->hs_complete;
    p->simultaneous_open[i] = c->simultaneous_open;
    p->fast_open[i] = c->fast_open;
    p->syn_retransmits[i] = o->syn_count ? o->syn_count - 1 : 0;
    p->synack_retransmits[i] = r->synack_count ? r->synack_count - 1 : 0;
    p->client_isn[i] = o->sent_syn || o->sent_synack ? (int64_t)o->isn : -1;
    p->server_isn[i] = r->sent_syn || r->sent_synack ? (int64_t)r->isn : -1;
    p->first_syn_ns[i] = c->hs_first_syn_ts;
    p->syn_ns[i] = c->hs_syn_ts;
    p->synack_ns[i] = c->hs_synack_ts;
    p->synack_answered_ns[i] = c->hs_synack_last_ts;
    p->ack_ns[i] = c->hs_ack_ts;
    /* RTTs as seen from the capture point, each half measured on the segment it
     * answers, so a lost SYN-ACK's retransmission timeout is not round-trip time:
     * server_rtt = SYN -> SYN-ACK, client_rtt = answered SYN-ACK -> ACK, irtt = sum. */
    p->server_rtt_ns[i] = delta(c->hs_synack_ts, c->hs_syn_ts);
    p->client_rtt_ns[i] = delta(c->hs_ack_ts, c->hs_synack_last_ts);
    p->irtt_ns[i] = p->server_rtt_ns[i] == TS_UNSET || p->client_rtt_ns[i] == TS_UNSET
                        ? TS_UNSET : p->server_rtt_ns[i] + p->client_rtt_ns[i];
    if (c->hs_synack_ts == TS_UNSET) /* no SYN-ACK captured (a one-way tap): SYN -> ACK */
        p->irtt_ns[i] = delta(c->hs_ack_ts, c->hs_syn_ts);
    fill_opts(o, &p->client_options[i], &p->client_mss[i], &p->client_wscale[i],
              &p->client_sack_permitted[i], &p->client_timestamps[i]);
    fill_opts(r, &p->server_options[i], &p->server_mss[i], &p->server_wscale[i],
              &p->server_sack_permitted[i], &p->server_timestamps[i]);
    p->close_kind[i] = c->close_kind;
    p->close_initiator[i] = c->close_initiator;
    p->close_reset_by[i] = c->reset_by;
    p->close_half_close[i] = c->half_close;
    p->close_time_wait[i] = c->time_wait;
    p->client_state[i] = o->st == ST_NONE ? -1 : (int8_t)o->st;
    p->server_state[i] = r->st == ST_NONE ? -1 : (int8_t)r->st;
    p->roles_guessed[i] = c->roles_guessed;
    p->flipped[i] = c->flipped;
    p->zeek_orig_bytes[i] = conn_zeek_size(c, 1);
    p->zeek_resp_bytes[i] = conn_zeek_size(c, 0);
    p->zeek_orig_pkts[i] = o->z_pkts;
    p->zeek_resp_pkts[i] = r->z_pkts;
    p->zeek_orig_ip_bytes[i] = o->z_ip_bytes;
    p->zeek_resp_ip_bytes[i] = r->z_ip_bytes;
    p->zeek_duration_ns[i] = c->z_last_time - c->first_ts;
    for (int k = 0; k < AN__COUNT; k++)
        p->anomalies[i * AN__COUNT + k] = c->s[0].an.count[k] + c->s[1].an.count[k];
    uint32_t odd = 0;
    p->trans_off[i] = (int32_t)*tr_at;
    for (uint32_t k = c->trans_head; k != NO_TRANS; k = t->trans[k].next) {
        const Transition *tr = &t->trans[k];
        if (tr->how == HOW_RETRACTED) continue;
        size_t j = (*tr_at)++;
        p->tr.role[j] = tr->side == c->orig ? 0 : 1;
        p->tr.state[j] = tr->state;
        p->tr.ts_ns[j] = tr->ts_ns;
        p->tr.packet[j] = tr->pkt_no;
        p->tr.how[j] = tr->how;
        p->tr.input[j] = tr->input == 0xFF ? -1 : (int8_t)tr->input;
        odd += tr->how == HOW_UNEXPECTED;
    }
    p->trans_off[i + 1] = (int32_t)*tr_at;
    p->unexpected[i] = odd;
}

static int fill_strings(const Tracker *t, const Conn *c, ConnCols *p, size_t i,
                        Buf str[COLS_N_STRINGS]) {
    char ip[2][INET6_ADDRSTRLEN], ep[INET6_ADDRSTRLEN + 10];
    for (int role = 0; role < 2; role++) {
        int side = role == 0 ? c->orig : c->orig ^ 1;
        inet_ntop(c->family == 4 ? AF_INET : AF_INET6, c->addr[side], ip[role],
                  sizeof ip[role]);
        int n = c->family == 4 ? snprintf(ep, sizeof ep, "%s:%u", ip[role], c->port[side])
                               : snprintf(ep, sizeof ep, "[%s]:%u", ip[role], c->port[side]);
        if (strings_add(&str[role], role == 0 ? p->client_off : p->server_off, i, ep,
                        (size_t)n))
            return -1;
        if (strings_add(&str[2 + role], role == 0 ? p->client_ip_off : p->server_ip_off, i,
                        ip[role], strlen(ip[role])))
            return -1;
    }
    if (strings_add(&str[4], p->history_off, i, conn_hist_c(c), c->hist_len)) return -1;
    for (int role = 0; role < 2; role++) {
        int side = role == 0 ? c->orig : c->orig ^ 1, first = 1;
        Buf *b = &str[5 + role];
        for (uint32_t k = c->trans_head; k != NO_TRANS; k = t->trans[k].next) {
            const Transition *tr = &t->trans[k];
            if (tr->side != side || tr->how == HOW_UNEXPECTED || tr->how == HOW_RETRACTED)
                continue;
            const char *name = NAMES_STATE[tr->state];
            size_t n = strlen(name);
            if (buf_reserve(b, n + 1)) return -1;
            if (!first) put_c(b, ' ');
            first = 0;
            put_raw(b, name, n);
        }
        (role == 0 ? p->client_states_off : p->server_states_off)[i + 1] = (int32_t)b->len;
    }
    return 0;
}

int cols_fill(Tracker *t, Conn *const *list, ConnCols *p, Buf str[COLS_N_STRINGS]) {
    size_t tr_at = 0;
    p->client_off[0] = p->server_off[0] = p->client_ip_off[0] = p->server_ip_off[0] =
        p->history_off[0] = p->client_states_off[0] = p->server_states_off[0] = 0;
    p->trans_off[0] = 0;
    for (size_t i = 0; i < p->n; i++) {
        Conn *c = list[i];
        if (!c->finished) conn_classify(c); /* a live capture: as of now */
        fill_row(t, c, p, i, &tr_at);
        if (fill_strings(t, c, p, i, str)) return -1;
    }
    return 0;
}

/* ---- text formats, each a view of the columns ---- */

static const char *const WHO_JSON[4] = {"null", "\"client\"", "\"server\"", "\"both\""};
static const char *const WHO_TEXT[4] = {"", "client", "server", "both"};

static size_t str_len(const int32_t *off, size_t i) { return (size_t)(off[i + 1] - off[i]); }
#define STR(p, name, i) ((p)->name + (p)->name##_off[i]), str_len((p)->name##_off, (i))

static void put_json_string(Buf *b, const char *s, size_t n) {
    put_c(b, '"');
    for (size_t k = 0; k < n; k++) {
        unsigned char ch = (unsigned char)s[k];
        if (ch == '"' || ch == '\\') { put_c(b, '\\'); put_c(b, (char)ch); }
        else if (ch < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            put_raw(b, esc, 6);
        } else put_c(b, (char)ch);
    }
    put_c(b, '"');
}

static void json_secs_or_null(Buf *b, int64_t ns) {
    if (ns == TS_UNSET) PUT_LIT(b, "null"); else put_secs(b, ns);
}

static void json_opts(Buf *b, const ConnCols *p, size_t i, int server) {
    const uint8_t have = server ? p->server_options[i] : p->client_options[i];
    if (!have) { PUT_LIT(b, "null"); return; }
    int32_t mss = server ? p->server_mss[i] : p->client_mss[i];
    int8_t ws = server ? p->server_wscale[i] : p->client_wscale[i];
    PUT_LIT(b, "{\"mss\":");
    if (mss < 0) PUT_LIT(b, "null"); else put_i64(b, mss);
    PUT_LIT(b, ",\"wscale\":");
    if (ws < 0) PUT_LIT(b, "null"); else put_i64(b, ws);
    PUT_LIT(b, ",\"sack_permitted\":");
    put_bool(b, server ? p->server_sack_permitted[i] : p->client_sack_permitted[i], 1);
    PUT_LIT(b, ",\"timestamps\":");
    put_bool(b, server ? p->server_timestamps[i] : p->client_timestamps[i], 1);
    put_c(b, '}');
}

static int render_jsonl(const ConnCols *p, size_t i, const char *tag, size_t tag_len,
                        Buf *b) {
    size_t ntr = (size_t)(p->trans_off[i + 1] - p->trans_off[i]);
    if (buf_reserve(b, 2048 + 6 * tag_len + ntr * 96 + str_len(p->history_off, i)))
        return -1;
    PUT_LIT(b, "{\"id\":");
    put_u64(b, p->id[i]);
    PUT_LIT(b, ",\"client\":");
    put_json_string(b, STR(p, client, i));
    PUT_LIT(b, ",\"server\":");
    put_json_string(b, STR(p, server, i));
    PUT_LIT(b, ",\"first_packet\":");
    put_u64(b, p->first_packet[i]);
    PUT_LIT(b, ",\"last_packet\":");
    put_u64(b, p->last_packet[i]);
    PUT_LIT(b, ",\"start\":");
    put_secs(b, p->start_ns[i]);
    PUT_LIT(b, ",\"end\":");
    put_secs(b, p->end_ns[i]);
    PUT_LIT(b, ",\"duration\":");
    put_secs(b, p->duration_ns[i]);
    PUT_LIT(b, ",\"packets\":{\"client\":");
    put_u64(b, p->packets_client[i]);
    PUT_LIT(b, ",\"server\":");
    put_u64(b, p->packets_server[i]);
    PUT_LIT(b, "},\"payload_bytes\":{\"client\":");
    put_u64(b, p->payload_bytes_client[i]);
    PUT_LIT(b, ",\"server\":");
    put_u64(b, p->payload_bytes_server[i]);
    PUT_LIT(b, "},\"conn_state\":\"");
    put_s(b, NAMES_CS[p->conn_state[i]]);
    PUT_LIT(b, "\",\"history\":");
    put_json_string(b, STR(p, history, i));
    PUT_LIT(b, ",\"handshake\":{\"complete\":");
    put_bool(b, p->handshake_complete[i], 1);
    PUT_LIT(b, ",\"simultaneous_open\":");
    put_bool(b, p->simultaneous_open[i], 1);
    PUT_LIT(b, ",\"fast_open\":");
    put_bool(b, p->fast_open[i], 1);
    PUT_LIT(b, ",\"syn_retransmits\":");
    put_u64(b, p->syn_retransmits[i]);
    PUT_LIT(b, ",\"synack_retransmits\":");
    put_u64(b, p->synack_retransmits[i]);
    PUT_LIT(b, ",\"client_isn\":");
    if (p->client_isn[i] < 0) PUT_LIT(b, "null"); else put_i64(b, p->client_isn[i]);
    PUT_LIT(b, ",\"server_isn\":");
    if (p->server_isn[i] < 0) PUT_LIT(b, "null"); else put_i64(b, p->server_isn[i]);
    PUT_LIT(b, ",\"irtt\":");
    json_secs_or_null(b, p->irtt_ns[i]);
    PUT_LIT(b, ",\"client_rtt\":");
    json_secs_or_null(b, p->client_rtt_ns[i]);
    PUT_LIT(b, ",\"server_rtt\":");
    json_secs_or_null(b, p->server_rtt_ns[i]);
    PUT_LIT(b, ",\"client_options\":");
    json_opts(b, p, i, 0);
    PUT_LIT(b, ",\"server_options\":");
    json_opts(b, p, i, 1);
    PUT_LIT(b, "},\"close\":{\"kind\":\"");
    put_s(b, NAMES_CK[p->close_kind[i]]);
    PUT_LIT(b, "\",\"initiator\":");
    put_s(b, WHO_JSON[p->close_initiator[i] & 3]);
    PUT_LIT(b, ",\"reset_by\":");
    put_s(b, WHO_JSON[p->close_reset_by[i] & 3]);
    PUT_LIT(b, ",\"half_close\":");
    put_bool(b, p->close_half_close[i], 1);
    PUT_LIT(b, ",\"time_wait\":");
    put_s(b, WHO_JSON[p->close_time_wait[i] & 3]);
    PUT_LIT(b, "},\"states\":{");
    size_t lo = (size_t)p->trans_off[i], hi = (size_t)p->trans_off[i + 1];
    for (int role = 0; role < 2; role++) {
        int first = 1;
        if (role == 0) PUT_LIT(b, "\"client\":["); else PUT_LIT(b, ",\"server\":[");
        for (size_t k = lo; k < hi; k++) {
            if (p->tr.role[k] != role || p->tr.how[k] == HOW_UNEXPECTED) continue;
            if (first) PUT_LIT(b, "["); else PUT_LIT(b, ",[");
            first = 0;
            put_secs(b, p->tr.ts_ns[k]);
            PUT_LIT(b, ",\"");
            put_s(b, NAMES_STATE[p->tr.state[k]]);
            PUT_LIT(b, "\"]");
        }
        put_c(b, ']');
    }
    PUT_LIT(b, "},\"roles_guessed\":");
    put_bool(b, p->roles_guessed[i], 1);
    PUT_LIT(b, ",\"unexpected\":[");
    int first = 1;
    for (size_t k = lo; k < hi; k++) {
        if (p->tr.how[k] != HOW_UNEXPECTED) continue;
        if (!first) put_c(b, ',');
        first = 0;
        PUT_LIT(b, "{\"packet\":");
        put_u64(b, p->tr.packet[k]);
        PUT_LIT(b, ",\"endpoint\":\"");
        put_s(b, p->tr.role[k] ? "server" : "client");
        PUT_LIT(b, "\",\"state\":\"");
        put_s(b, NAMES_STATE[p->tr.state[k]]);
        PUT_LIT(b, "\",\"input\":\"");
        put_s(b, p->tr.input[k] < 0 ? "" : NAMES_INPUT[p->tr.input[k]]);
        PUT_LIT(b, "\"}");
    }
    PUT_LIT(b, "],\"anomalies\":{"); /* non-zero totals only, in bit order */
    first = 1;
    for (int k = 0; k < AN__COUNT; k++) {
        uint32_t n = p->anomalies[i * AN__COUNT + k];
        if (!n) continue;
        if (!first) put_c(b, ',');
        first = 0;
        put_c(b, '"');
        put_s(b, NAMES_ANOMALY[k]);
        PUT_LIT(b, "\":");
        put_u64(b, n);
    }
    put_c(b, '}');
    if (tag) {
        PUT_LIT(b, ",\"file\":");
        put_json_string(b, tag, tag_len);
    }
    PUT_LIT(b, "}\n");
    return 0;
}

static void put_csv_field(Buf *b, const char *s, size_t n) {
    int quote = 0;
    for (size_t k = 0; k < n; k++)
        if (s[k] == ',' || s[k] == '"' || s[k] == '\n' || s[k] == '\r') quote = 1;
    if (!quote) { put_raw(b, s, n); return; }
    put_c(b, '"');
    for (size_t k = 0; k < n; k++) {
        if (s[k] == '"') put_c(b, '"');
        put_c(b, s[k]);
    }
    put_c(b, '"');
}

static void csv_secs_or_empty(Buf *b, int64_t ns) {
    if (ns != TS_UNSET) put_secs(b, ns);
}

static void csv_opts(Buf *b, const ConnCols *p, size_t i, int server) {
    if (!(server ? p->server_options[i] : p->client_options[i])) {
        PUT_LIT(b, ",,,,");
        return;
    }
    int32_t mss = server ? p->server_mss[i] : p->client_mss[i];
    int8_t ws = server ? p->server_wscale[i] : p->client_wscale[i];
    put_c(b, ',');
    if (mss >= 0) put_i64(b, mss);
    put_c(b, ',');
    if (ws >= 0) put_i64(b, ws);
    put_c(b, ',');
    put_bool(b, server ? p->server_sack_permitted[i] : p->client_sack_permitted[i], 0);
    put_c(b, ',');
    put_bool(b, server ? p->server_timestamps[i] : p->client_timestamps[i], 0);
}

/* analyzer.formats.CSV_COLUMNS, in that order ("file" first when tagged). */
static int render_csv(const ConnCols *p, size_t i, const char *tag, size_t tag_len,
                      Buf *b) {
    if (buf_reserve(b, 1536 + 2 * tag_len + str_len(p->history_off, i) +
                           str_len(p->client_states_off, i) + str_len(p->server_states_off, i)))
        return -1;
    if (tag) { put_csv_field(b, tag, tag_len); put_c(b, ','); }
    put_u64(b, p->id[i]); put_c(b, ',');
    put_csv_field(b, STR(p, client, i)); put_c(b, ',');
    put_csv_field(b, STR(p, server, i)); put_c(b, ',');
    put_u64(b, p->first_packet[i]); put_c(b, ',');
    put_u64(b, p->last_packet[i]); put_c(b, ',');
    put_secs(b, p->start_ns[i]); put_c(b, ',');
    put_secs(b, p->end_ns[i]); put_c(b, ',');
    put_secs(b, p->duration_ns[i]); put_c(b, ',');
    put_u64(b, p->packets_client[i]); put_c(b, ',');
    put_u64(b, p->packets_server[i]); put_c(b, ',');
    put_u64(b, p->payload_bytes_client[i]); put_c(b, ',');
    put_u64(b, p->payload_bytes_server[i]); put_c(b, ',');
    put_s(b, NAMES_CS[p->conn_state[i]]); put_c(b, ',');
    put_csv_field(b, STR(p, history, i)); put_c(b, ',');
    put_bool(b, p->handshake_complete[i], 0); put_c(b, ',');
    put_bool(b, p->simultaneous_open[i], 0); put_c(b, ',');
    put_bool(b, p->fast_open[i], 0); put_c(b, ',');
    put_u64(b, p->syn_retransmits[i]); put_c(b, ',');
    put_u64(b, p->synack_retransmits[i]); put_c(b, ',');
    if (p->client_isn[i] >= 0) put_i64(b, p->client_isn[i]);
    put_c(b, ',');
    if (p->server_isn[i] >= 0) put_i64(b, p->server_isn[i]);
    put_c(b, ',');
    csv_secs_or_empty(b, p->irtt_ns[i]); put_c(b, ',');
    csv_secs_or_empty(b, p->client_rtt_ns[i]); put_c(b, ',');
    csv_secs_or_empty(b, p->server_rtt_ns[i]);
    csv_opts(b, p, i, 0);
    csv_opts(b, p, i, 1);
    put_c(b, ',');
    put_s(b, NAMES_CK[p->close_kind[i]]); put_c(b, ',');
    put_s(b, WHO_TEXT[p->close_initiator[i] & 3]); put_c(b, ',');
    put_s(b, WHO_TEXT[p->close_reset_by[i] & 3]); put_c(b, ',');
    put_bool(b, p->close_half_close[i], 0); put_c(b, ',');
    put_s(b, WHO_TEXT[p->close_time_wait[i] & 3]);
    put_c(b, ',');
    put_raw(b, STR(p, client_states, i));
    put_c(b, ',');
    put_raw(b, STR(p, server_states, i));
    put_c(b, ',');
    put_bool(b, p->roles_guessed[i], 0); put_c(b, ',');
    put_u64(b, p->unexpected[i]); put_c(b, ',');
    int first = 1; /* e.g. "retransmission=3 duplicate_ack=5": non-zero counts only */
    for (int k = 0; k < AN__COUNT; k++) {
        uint32_t n = p->anomalies[i * AN__COUNT + k];
        if (!n) continue;
        if (!first) put_c(b, ' ');
        first = 0;
        put_s(b, NAMES_ANOMALY[k]);
        put_c(b, '=');
        put_u64(b, n);
    }
    put_c(b, '\n');
    return 0;
}

/* A stable Zeek-style uid: 'C' and 17 base62 characters from the path and the id
 * (FNV-1a of the path, mixed with the id by splitmix64: 128 bits, 101 used). */
static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void put_uid(Buf *b, uint64_t seed, uint32_t id) {
    static const char alphabet[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    uint64_t hi = mix64(seed ^ id), lo = mix64(hi ^ ((uint64_t)id << 32));
    put_c(b, 'C');
    for (int k = 0; k < 17; k++) {
        /* divide the 128-bit (hi, lo) by 62 */
        unsigned __int128 v = ((unsigned __int128)hi << 64) | lo;
        put_c(b, alphabet[(int)(v % 62)]);
        v /= 62;
        hi = (uint64_t)(v >> 64);
        lo = (uint64_t)v;
    }
}

/* Seconds with 6 decimals, rounded from the exact nanoseconds (half to even), as Zeek
 * prints times and intervals. */
static void put_fixed6(Buf *b, int64_t ns) {
    uint64_t a = ns < 0 ? 0 - (uint64_t)ns : (uint64_t)ns;
    uint64_t us = a / 1000, rem = a % 1000;
    if (rem > 500 || (rem == 500 && (us & 1))) us++;
    if (ns < 0 && us) put_c(b, '-');
    put_u64(b, us / 1000000);
    put_c(b, '.');
    uint64_t frac = us % 1000000;
    for (uint64_t d = 100000; d; d /= 10) put_c(b, (char)('0' + frac / d % 10));
}

/* analyzer.formats.ZEEK_FIELDS, with Zeek's rules for unset fields. */
static int render_zeek(const ConnCols *p, size_t i, uint64_t seed, Buf *b) {
    if (buf_reserve(b, 512 + str_len(p->history_off, i))) return -1;
    put_fixed6(b, p->start_ns[i]); put_c(b, '\t');
    put_uid(b, seed, p->id[i]); put_c(b, '\t');
    put_raw(b, STR(p, client_ip, i)); put_c(b, '\t');
    put_u64(b, p->client_port[i]); put_c(b, '\t');
    put_raw(b, STR(p, server_ip, i)); put_c(b, '\t');
    put_u64(b, p->server_port[i]);
    PUT_LIT(b, "\ttcp\t-\t");
    int timed = p->zeek_duration_ns[i] > 0; /* Zeek leaves duration and bytes unset */
    if (timed) {
        put_fixed6(b, p->zeek_duration_ns[i]); put_c(b, '\t');
        put_u64(b, p->zeek_orig_bytes[i]); put_c(b, '\t');
        put_u64(b, p->zeek_resp_bytes[i]); put_c(b, '\t');
    } else {
        PUT_LIT(b, "-\t-\t-\t");
    }
    put_s(b, NAMES_CS[p->conn_state[i]]);
    PUT_LIT(b, "\t-\t-\t0\t");
    if (str_len(p->history_off, i)) put_raw(b, STR(p, history, i)); else put_c(b, '-');
    put_c(b, '\t');
    put_u64(b, p->zeek_orig_pkts[i]); put_c(b, '\t');
    put_u64(b, p->zeek_orig_ip_bytes[i]); put_c(b, '\t');
    put_u64(b, p->zeek_resp_pkts[i]); put_c(b, '\t');
    put_u64(b, p->zeek_resp_ip_bytes[i]);
    PUT_LIT(b, "\t-\t6\n");
    return 0;
}

int render_batch(const ConnCols *p, int fmt, const char *tag, size_t tag_len,
                 const char *uid_seed, size_t seed_len, Buf *out) {
    uint64_t seed = 0xcbf29ce484222325ull;
    for (size_t k = 0; k < seed_len; k++) seed = (seed ^ (uint8_t)uid_seed[k]) * 0x100000001b3ull;
    for (size_t i = 0; i < p->n; i++) {
        int rc = fmt == RENDER_JSONL ? render_jsonl(p, i, tag, tag_len, out)
                 : fmt == RENDER_CSV ? render_csv(p, i, tag, tag_len, out)
                                     : render_zeek(p, i, seed, out);
        if (rc) return -1;
    }
    return 0;
}
