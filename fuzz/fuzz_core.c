/* libFuzzer harness around the compiled core alone (no Python): the same three ways in
 * as fuzz/harness.py, at thousands of executions a second, for long campaigns.
 *
 *   fuzz/build_core_fuzzer.sh build/core      then
 *   build/core/fuzz_core build/core-corpus fuzz/seeds -max_len=8192 -runs=1000000
 *
 * Byte 0 picks the way (byte % 3: file, live, segments) and the options (bits 0x04
 * verify checksums, 0x08 Zeek timers, 0x10 record every row, 0x20 likely server ports);
 * the layout of the rest is fuzz/harness.py's. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "framing.h"
#include "columns.h"
#include "track.h"

#include "fsm_table.inc" /* FSM_TABLE: analyzer.fsm.table_bytes(), written by the build */

static void names(void) {
    static int done;
    if (done) return;
    done = 1;
    for (int i = 0; i < N_TCP_STATES; i++) NAMES_STATE[i] = "S";
    for (int i = 0; i < N_INPUTS; i++) NAMES_INPUT[i] = "I";
    for (int i = 0; i < 13; i++) NAMES_CS[i] = "C";
    for (int i = 0; i < 8; i++) NAMES_CK[i] = "K";
    for (int i = 0; i < AN__COUNT; i++) NAMES_ANOMALY[i] = "A";
}

/* What the binding does for Engine.columns and render (module.c): connections
 * [start, start + n) filled into columns, then written as jsonl, csv and zeek. */
static void render_range(Tracker *t, size_t start, size_t n, Buf *b) {
    ConnCols p;
    memset(&p, 0, sizeof p);
    p.n = n;
    Conn **list = malloc((n ? n : 1) * sizeof *list);
    if (!list) return;
    for (size_t i = 0; i < n; i++) list[i] = &t->conns[start + i];
    size_t ntr = cols_trans_count(t, list, n);
#define ALLOC(name, code, type, per) p.name = malloc((n ? n : 1) * sizeof(type) * (per));
    CONN_FIXED_COLUMNS(ALLOC)
#undef ALLOC
#define ALLOC(name, code, type, per) p.tr.name = malloc((ntr ? ntr : 1) * sizeof(type) * (per));
    TRANS_COLUMNS(ALLOC)
#undef ALLOC
#define ALLOC(name) p.name##_off = malloc((n + 1) * sizeof(int32_t));
    CONN_STRING_COLUMNS(ALLOC)
#undef ALLOC
    p.trans_off = malloc((n + 1) * sizeof(int32_t));
    Buf str[COLS_N_STRINGS];
    memset(str, 0, sizeof str);
    if (p.id && p.tr.role && p.trans_off && p.history_off && cols_fill(t, list, &p, str) == 0) {
        char **data[COLS_N_STRINGS] = {&p.client, &p.server, &p.client_ip, &p.server_ip,
                                       &p.history, &p.client_states, &p.server_states};
        for (int j = 0; j < COLS_N_STRINGS; j++) *data[j] = str[j].data ? str[j].data : "";
        for (int fmt = RENDER_JSONL; fmt <= RENDER_ZEEK; fmt++) {
            b->len = 0;
            render_batch(&p, fmt, fmt == RENDER_CSV ? "f,\"" : NULL, 3, "seed", 4, b);
        }
    }
    for (int j = 0; j < COLS_N_STRINGS; j++) free(str[j].data);
    free(list);
#define FREE(name, code, type, per) free(p.name);
    CONN_FIXED_COLUMNS(FREE)
#undef FREE
#define FREE(name, code, type, per) free(p.tr.name);
    TRANS_COLUMNS(FREE)
#undef FREE
#define FREE(name) free(p.name##_off);
    CONN_STRING_COLUMNS(FREE)
#undef FREE
    free(p.trans_off);
}

/* What the binding's readers do (module.c): classify live, columns and text, rows. */
static void read_back(Tracker *t, Buf *b) {
    uint32_t n = t->n_conns;
    uint32_t pick[3] = {0, n / 2, n ? n - 1 : 0};
    for (int k = 0; k < 3 && n; k++) render_range(t, pick[k], 1, b);
    if (t->n_rows) (void)t->conns[t->rows[t->n_rows - 1].conn].orig;
}

static uint64_t rd(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    names();
    Tracker t;
    Framer f;
    Buf b = {0};
    if (tracker_init(&t, FSM_TABLE)) return 0;
    framer_init(&f);
    uint8_t opt = data[0];
    t.verify_checksums = !!(opt & 0x04);
    t.zeek_timers = !!(opt & 0x08);
    t.record_conn = opt & 0x10 ? -2 : -1;
    if (opt & 0x20) {
        t.likely_ports = calloc(65536 / 8, 1);
        if (t.likely_ports) t.likely_ports[80 >> 3] |= 1u << (80 & 7);
    }
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    switch (opt % 3) {
    case 0: { /* file: the whole input, then what is left, as capture.read */
        size_t pos = 0;
        while (pos < len) {
            long used = framer_feed(&f, body + pos, len - pos, tracker_frame, &t);
            if (used <= 0) break;
            pos += (size_t)used;
        }
        break;
    }
    case 1: { /* live: chunks sized by the input, unconsumed bytes kept */
        uint8_t *pending = malloc(len + 1);
        size_t have = 0, pos = 0, chunks = 0;
        while (pending && pos < len) {
            size_t chunk = 1 + (size_t)body[pos] * 7;
            pos++;
            if (chunk > len - pos) chunk = len - pos;
            memcpy(pending + have, body + pos, chunk);
            have += chunk;
            pos += chunk;
            long used = framer_feed(&f, pending, have, tracker_frame, &t);
            if (used < 0) break;
            memmove(pending, pending + used, have - (size_t)used);
            have -= (size_t)used;
            if (++chunks % 4 == 0) read_back(&t, &b);
        }
        free(pending);
        break;
    }
    default: /* segments: 42-byte records, as Engine.feed_segment (module.c) */
        for (size_t k = 0; k + 42 <= len; k += 42) {
            const uint8_t *p = body + k;
            Segment s;
            memset(&s, 0, sizeof s);
            s.family = 4;
            s.src[0] = s.dst[0] = 10;
            s.src[3] = (uint8_t)(rd(p + 8, 4) & 3);
            s.dst[3] = (uint8_t)(rd(p + 12, 4) & 3);
            s.sport = (uint16_t)(rd(p + 16, 2) & 7);
            s.dport = (uint16_t)(rd(p + 18, 2) & 7);
            s.flags = p[20];
            s.seq = (uint32_t)rd(p + 21, 4);
            s.ack = (uint32_t)rd(p + 25, 4);
            s.payload_len = (uint32_t)rd(p + 29, 2);
            s.win = (uint16_t)rd(p + 31, 2);
            s.mss = (int16_t)rd(p + 33, 2);
            s.wscale = (int8_t)p[35];
            s.sack_ok = p[36] & 1;
            s.ts_present = p[37] & 1;
            uint32_t pk = (uint32_t)rd(p + 38, 4);
            s.pkt_no = pk & 0x100 ? (pk & 0xFF) : 0;
            if (s.pkt_no) {
                if (s.pkt_no > t.frames) t.frames = s.pkt_no;
            } else {
                s.pkt_no = ++t.frames;
            }
            s.ts_ns = framer_time(&f, (int64_t)rd(p, 8), s.pkt_no);
            s.ip_len = s.payload_len + 40;
            t.decoded[DEC_TCP]++;
            tracker_segment(&t, &s);
            if (k % (42 * 16) == 0) read_back(&t, &b);
        }
    }
    read_back(&t, &b);
    tracker_finish(&t);
    render_range(&t, 0, t.n_conns, &b);
    free(b.data);
    tracker_free(&t); /* frees likely_ports too */
    framer_free(&f);
    return 0;
}
