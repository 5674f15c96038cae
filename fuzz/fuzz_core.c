/* libFuzzer harness around the compiled core alone (no Python): the same three ways in
 * as fuzz/harness.py, at thousands of executions a second, for long campaigns.
 *
 *   fuzz/build_core_fuzzer.sh build/core      then
 *   build/core/fuzz_core build/core-corpus fuzz/seeds -max_len=8192 -runs=1000000
 *
 * Byte 0 picks the way (byte % 3: file, live, segments) and the options (bits 0x04
 * verify checksums, 0x08 Zeek timers, 0x10 record every row, 0x20 likely server ports,
 * 0x80 idle_ns 2 s); the layout of the rest is fuzz/harness.py's.
 * Bit 0x40: stream mode (track.c's streaming: Pends, sweeps after every packet, write-out,
 * the pool of Conns, compact_trans), written out in end order when 0x10 is set (rows are
 * not kept when streaming), taken a few at a time as it goes; then the same input is read
 * in memory and the two must give the same JSON lines (end order: the same lines;
 * unless times stepped back after a write-out, time_back_late), or the harness aborts:
 * a finding. FUZZ_CORE_STREAM=1 in the environment sets 0x40 on
 * every input (a campaign on the stream mode alone). */
#include <stdint.h>
#include <stdio.h>
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

/* What the binding does for Engine.columns, Engine.take and render (module.c): the
 * connections list[0 .. n) filled into columns, then written as jsonl, csv and zeek; the
 * jsonl also appended to `keep` when given. */
static void render_list(Tracker *t, Conn *const *list, size_t n, Buf *b, Buf *keep) {
    ConnCols p;
    memset(&p, 0, sizeof p);
    p.n = n;
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
            if (fmt == RENDER_JSONL && keep) render_batch(&p, fmt, NULL, 0, "seed", 4, keep);
        }
    }
    for (int j = 0; j < COLS_N_STRINGS; j++) free(str[j].data);
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

static void render_range(Tracker *t, size_t start, size_t n, Buf *b, Buf *keep) {
    Conn **list = malloc((n ? n : 1) * sizeof *list);
    if (!list) return;
    for (size_t i = 0; i < n; i++) list[i] = &t->conns[start + i];
    render_list(t, list, n, b, keep);
    free(list);
}

/* What Engine.take does: up to `limit` connections written out, rendered, released.
 * Returns how many (0: none left), -1 out of memory. */
static long take(Tracker *t, uint32_t limit, int final, Buf *b, Buf *keep) {
    uint32_t slots[8];
    Conn *list[8];
    if (limit > 8) limit = 8;
    long n = stream_take(t, slots, limit, final);
    if (n <= 0) return n;
    for (long i = 0; i < n; i++) list[i] = &t->conns[slots[i]];
    render_list(t, list, (size_t)n, b, keep);
    stream_release(t, slots, (uint32_t)n);
    return n;
}

/* What the binding's readers do (module.c): classify live, columns and text, rows; a
 * streamed engine hands out what is written out instead. */
static void read_back(Tracker *t, Buf *b, Buf *keep) {
    if (t->stream) {
        (void)take(t, 3, 0, b, keep);
        return;
    }
    uint32_t n = t->n_conns;
    uint32_t pick[3] = {0, n / 2, n ? n - 1 : 0};
    for (int k = 0; k < 3 && n; k++) render_range(t, pick[k], 1, b, NULL);
    if (t->n_rows) (void)t->conns[t->rows[t->n_rows - 1].conn].orig;
}

static uint64_t rd(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* One read of the input; the JSON lines of every connection are appended to `out`.
 * Returns -1 when there is nothing to compare (see the end). */
static int run(uint8_t opt, const uint8_t *data, size_t size, int stream, Buf *out) {
    Tracker t;
    Framer f;
    Buf b = {0};
    if (tracker_init(&t, FSM_TABLE)) return -1;
    framer_init(&f);
    t.verify_checksums = !!(opt & 0x04);
    t.zeek_timers = !!(opt & 0x08);
    t.record_conn = opt & 0x10 && !(opt & 0x40) ? -2 : -1;
    t.idle_ns = opt & 0x80 ? 2000000000ll : 0;
    if (stream) {
        t.stream = 1;
        t.order_end = !!(opt & 0x10);
        t.sweep_every = 1;
    }
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
            if (++chunks % 4 == 0) read_back(&t, &b, out);
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
            if (k % (42 * 16) == 0) read_back(&t, &b, out);
        }
    }
    read_back(&t, &b, out);
    tracker_finish(&t);
    if (stream) {
        while (take(&t, 5, 1, &b, out) > 0) {}
    } else {
        render_range(&t, 0, t.n_conns, &b, out);
    }
    /* out of memory, or times stepping back further after a write-out (time_back_late:
     * a connection may have gone out early, as the read warns): nothing to compare */
    int skip = t.oom || t.skew_late_pkt;
    free(b.data);
    tracker_free(&t); /* frees likely_ports too */
    framer_free(&f);
    return skip ? -1 : 0;
}

static int by_text(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of a jsonl buffer, sorted (end order: the same set as by id). */
static char **sorted_lines(Buf *j, size_t *n) {
    *n = 0;
    for (size_t i = 0; i < j->len; i++) *n += j->data[i] == '\n';
    char **v = malloc((*n ? *n : 1) * sizeof *v);
    if (!v) return NULL;
    size_t k = 0;
    for (size_t i = 0, start = 0; i < j->len; i++)
        if (j->data[i] == '\n') {
            j->data[i] = 0;
            v[k++] = j->data + start;
            start = i + 1;
        }
    qsort(v, *n, sizeof *v, by_text);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    names();
    static int force = -1; /* FUZZ_CORE_STREAM=1: every input in stream mode */
    if (force < 0) force = getenv("FUZZ_CORE_STREAM") != NULL;
    uint8_t opt = (uint8_t)(data[0] | (force ? 0x40 : 0));
    Buf mem = {0}, str = {0};
    int stream = !!(opt & 0x40);
    if (run(opt, data, size, 0, &mem) == 0 && stream && run(opt, data, size, 1, &str) == 0) {
        int same;
        if (opt & 0x10) { /* end order */
            size_t na, nb;
            char **a = sorted_lines(&mem, &na), **b = sorted_lines(&str, &nb);
            same = !a || !b || na == nb;
            for (size_t i = 0; a && b && same && i < na; i++) same = !strcmp(a[i], b[i]);
            free(a);
            free(b);
        } else {
            same = mem.len == str.len && (!mem.len || !memcmp(mem.data, str.data, mem.len));
        }
        if (!same) {
            fprintf(stderr, "fuzz_core: streamed records differ from the in-memory ones\n");
            abort();
        }
    }
    free(mem.data);
    free(str.data);
    return 0;
}
