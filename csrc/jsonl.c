/* One connection as a JSON object, byte for byte the record analyzer.records.build_record
 * makes (tests/test_jsonl.py checks they parse to the same value). Names of states,
 * inputs, conn_states and close kinds come from Python (engine_set_names), so the C code
 * holds no list of its own. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jsonl.h"
#include "zeek.h"

const char *NAMES_STATE[N_TCP_STATES], *NAMES_INPUT[N_INPUTS], *NAMES_CS[13], *NAMES_CK[8],
    *NAMES_ANOMALY[AN__COUNT];
static const char *WHO_NAMES[4] = {"null", "\"client\"", "\"server\"", "\"both\""};

static int put(Buf *b, const char *fmt, ...) {
    if (!b->data) { /* no `NULL + len` arithmetic below (C11 6.5.6: undefined) */
        b->data = malloc(1024);
        if (!b->data) return -1;
        b->cap = 1024;
        b->len = 0;
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->data + b->len, room, fmt, ap);
        va_end(ap);
        if (n < 0) return -1;
        if ((size_t)n < room) { b->len += (size_t)n; return 0; }
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap - b->len <= (size_t)n) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return -1;
        b->data = d;
        b->cap = cap;
    }
}

static void put_secs(Buf *b, int64_t ns) {
    const char *sign = ns < 0 ? "-" : "";
    uint64_t a = ns < 0 ? 0 - (uint64_t)ns : (uint64_t)ns; /* no overflow at INT64_MIN */
    put(b, "%s%llu.%09llu", sign, (unsigned long long)(a / 1000000000ull),
        (unsigned long long)(a % 1000000000ull));
}

static void put_delta(Buf *b, int64_t later, int64_t earlier) {
    if (later == TS_UNSET || earlier == TS_UNSET) put(b, "null");
    else put_secs(b, later - earlier);
}

static void put_endpoint(Buf *b, const Conn *c, int side) {
    char txt[INET6_ADDRSTRLEN];
    inet_ntop(c->family == 4 ? AF_INET : AF_INET6, c->addr[side], txt, sizeof txt);
    if (c->family == 4) put(b, "\"%s:%u\"", txt, c->port[side]);
    else put(b, "\"[%s]:%u\"", txt, c->port[side]);
}

static void put_opts(Buf *b, const Side *e) {
    if (!e->have_opts) { put(b, "null"); return; }
    put(b, "{\"mss\":");
    if (e->mss < 0) put(b, "null"); else put(b, "%d", e->mss);
    put(b, ",\"wscale\":");
    if (e->wscale < 0) put(b, "null"); else put(b, "%d", e->wscale);
    put(b, ",\"sack_permitted\":%s,\"timestamps\":%s}", e->sack_ok ? "true" : "false",
        e->ts_ok ? "true" : "false");
}

static void put_isn(Buf *b, const Side *e) {
    if (e->sent_syn || e->sent_synack) put(b, "%u", e->isn);
    else put(b, "null");
}

int conn_json(const Tracker *t, const Conn *c, Buf *b) {
    const Side *o = &c->s[c->orig], *r = &c->s[c->orig ^ 1];
    b->len = 0;
    put(b, "{\"id\":%u,\"client\":", c->id);
    put_endpoint(b, c, c->orig);
    put(b, ",\"server\":");
    put_endpoint(b, c, c->orig ^ 1);
    put(b, ",\"first_packet\":%llu,\"last_packet\":%llu,\"start\":",
        (unsigned long long)c->first_pkt, (unsigned long long)c->last_pkt);
    put_secs(b, c->first_ts);
    put(b, ",\"end\":");
    put_secs(b, c->last_ts);
    put(b, ",\"duration\":");
    put_secs(b, c->last_ts - c->first_ts);
    put(b, ",\"packets\":{\"client\":%llu,\"server\":%llu},\"payload_bytes\":{\"client\":%llu,"
        "\"server\":%llu},\"conn_state\":\"%s\",\"history\":\"%s\",\"handshake\":{\"complete\":%s,"
        "\"simultaneous_open\":%s,\"fast_open\":%s,\"syn_retransmits\":%u,"
        "\"synack_retransmits\":%u,\"client_isn\":",
        (unsigned long long)o->pkts, (unsigned long long)r->pkts,
        (unsigned long long)o->payload, (unsigned long long)r->payload,
        NAMES_CS[c->conn_state], conn_hist_c(c), c->hs_complete ? "true" : "false",
        c->simultaneous_open ? "true" : "false", c->fast_open ? "true" : "false",
        o->syn_count ? o->syn_count - 1 : 0,
        r->synack_count ? r->synack_count - 1 : 0);
    put_isn(b, o);
    put(b, ",\"server_isn\":");
    put_isn(b, r);
    put(b, ",\"irtt\":");
    /* iRTT is the sum of the two halves, each measured on the segment it answers, so
     * a lost SYN-ACK's retransmission timeout is not counted as round-trip time; without
     * a captured SYN-ACK, SYN -> ACK (records.irtt_seconds says the same). */
    if (c->hs_synack_ts == TS_UNSET && c->hs_ack_ts != TS_UNSET && c->hs_syn_ts != TS_UNSET)
        put_secs(b, c->hs_ack_ts - c->hs_syn_ts);
    else if (c->hs_ack_ts == TS_UNSET || c->hs_synack_last_ts == TS_UNSET ||
        c->hs_synack_ts == TS_UNSET || c->hs_syn_ts == TS_UNSET)
        put(b, "null");
    else
        put_secs(b, (c->hs_ack_ts - c->hs_synack_last_ts) + (c->hs_synack_ts - c->hs_syn_ts));
    put(b, ",\"client_rtt\":");
    put_delta(b, c->hs_ack_ts, c->hs_synack_last_ts);
    put(b, ",\"server_rtt\":");
    put_delta(b, c->hs_synack_ts, c->hs_syn_ts);
    put(b, ",\"client_options\":");
    put_opts(b, o);
    put(b, ",\"server_options\":");
    put_opts(b, r);
    put(b, "},\"close\":{\"kind\":\"%s\",\"initiator\":%s,\"reset_by\":%s,\"half_close\":%s,"
        "\"time_wait\":%s},\"states\":{",
        NAMES_CK[c->close_kind], WHO_NAMES[c->close_initiator], WHO_NAMES[c->reset_by],
        c->half_close ? "true" : "false", WHO_NAMES[c->time_wait]);
    for (int role = 0; role < 2; role++) {
        int side = role == 0 ? c->orig : c->orig ^ 1, first = 1;
        put(b, role == 0 ? "\"client\":[" : ",\"server\":[");
        for (uint32_t k = c->trans_head; k != UINT32_MAX; k = t->trans[k].next) {
            const Transition *tr = &t->trans[k];
            if (tr->side != side || tr->how == HOW_UNEXPECTED || tr->how == HOW_RETRACTED)
                continue;
            put(b, first ? "[" : ",[");
            first = 0;
            put_secs(b, tr->ts_ns);
            put(b, ",\"%s\"]", NAMES_STATE[tr->state]);
        }
        put(b, "]");
    }
    put(b, "},\"roles_guessed\":%s,\"unexpected\":[", c->roles_guessed ? "true" : "false");
    int first = 1;
    for (uint32_t k = c->trans_head; k != UINT32_MAX; k = t->trans[k].next) {
        const Transition *tr = &t->trans[k];
        if (tr->how != HOW_UNEXPECTED) continue;
        put(b, "%s{\"packet\":%llu,\"endpoint\":\"%s\",\"state\":\"%s\",\"input\":\"%s\"}",
            first ? "" : ",", (unsigned long long)tr->pkt_no,
            tr->side == c->orig ? "client" : "server", NAMES_STATE[tr->state],
            NAMES_INPUT[tr->input]);
        first = 0;
    }
    put(b, "],\"anomalies\":{"); /* non-zero totals only, in bit order (records.py) */
    first = 1;
    for (int k = 0; k < AN__COUNT; k++) {
        uint32_t n = c->s[0].an.count[k] + c->s[1].an.count[k];
        if (!n) continue;
        put(b, "%s\"%s\":%u", first ? "" : ",", NAMES_ANOMALY[k], n);
        first = 0;
    }
    return put(b, "}}\n");
}
