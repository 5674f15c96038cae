/* Python binding of the compiled core: analyzer._engine.Engine. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#include <string.h>
#include "engine.h"
#include "framing.h"
#include "track.h"
#include "columns.h"
#include "merge.h"

static PyObject *FormatError;

/* Thread safety. feed() runs with the GIL released (a live capture's thread feeds while a
 * notebook reads the same Capture), and feeding reallocates the connection, transition
 * and row arrays. So every method takes the engine's own lock for its whole run: a reader
 * never sees an array being moved, a feed never runs beside a reader. Methods are listed
 * in Engine_methods only through the LOCKED_* wrappers below; a new method must be too. */
typedef struct {
    PyObject_HEAD
    Framer framer;
    Tracker tracker;
    int ready;
    PyThread_type_lock lock; /* held by whichever method runs (see above) */
} EngineObject;

/* Take the lock; if another thread holds it (a feed, the GIL released), wait for it
 * without the GIL so that thread, and every other, can go on. */
static int engine_lock(EngineObject *self) {
    if (!self->lock) {
        PyErr_SetString(PyExc_RuntimeError, "Engine used before __init__ succeeded");
        return -1;
    }
    if (!PyThread_acquire_lock(self->lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(self->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
    return 0;
}

static void engine_unlock(EngineObject *self) { PyThread_release_lock(self->lock); }

static PyObject *not_ready(void) {
    PyErr_SetString(PyExc_RuntimeError, "Engine used before __init__ succeeded");
    return NULL;
}

#define LOCKED_1(fn)                                                                      \
    static PyObject *fn##_locked(EngineObject *self, PyObject *a) {                       \
        if (engine_lock(self) < 0) return NULL;                                           \
        PyObject *r = self->ready ? fn(self, a) : not_ready();                            \
        engine_unlock(self);                                                              \
        return r;                                                                         \
    }
#define LOCKED_KW(fn)                                                                     \
    static PyObject *fn##_locked(EngineObject *self, PyObject *a, PyObject *kw) {         \
        if (engine_lock(self) < 0) return NULL;                                           \
        PyObject *r = self->ready ? fn(self, a, kw) : not_ready();                        \
        engine_unlock(self);                                                              \
        return r;                                                                         \
    }

static void Engine_dealloc(EngineObject *self) {
    if (self->ready) {
        framer_free(&self->framer);
        tracker_free(&self->tracker);
    }
    if (self->lock) PyThread_free_lock(self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* read -f: {linktype: program} where a program is libpcap's struct bpf_insn array as
 * bytes (analyzer.bpf compiles it). Frames of a link type not in the dict never match. */
static int set_bpf(Tracker *t, PyObject *programs) {
    if (!PyDict_Check(programs)) {
        PyErr_SetString(PyExc_TypeError, "bpf must be a dict {linktype: program bytes}");
        return -1;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(programs, &pos, &key, &value)) {
        if (t->n_bpf == BPF_LINKTYPES) {
            PyErr_SetString(PyExc_ValueError, "bpf: too many link types");
            return -1;
        }
        unsigned long linktype = PyLong_AsUnsignedLong(key);
        if (PyErr_Occurred()) return -1;
        char *buf;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(value, &buf, &len) < 0) return -1;
        size_t n = (size_t)len / sizeof(BpfInsn);
        if ((size_t)len % sizeof(BpfInsn) || !bpf_valid((const BpfInsn *)(void *)buf, n)) {
            PyErr_SetString(PyExc_ValueError, "bpf: not a valid BPF program");
            return -1;
        }
        BpfInsn *prog = malloc((size_t)len);
        if (!prog) { PyErr_NoMemory(); return -1; }
        memcpy(prog, buf, (size_t)len);
        t->bpf[t->n_bpf].linktype = (uint32_t)linktype;
        t->bpf[t->n_bpf].n = (uint32_t)n;
        t->bpf[t->n_bpf].prog = prog;
        t->n_bpf++;
    }
    t->has_bpf = 1;
    return 0;
}

static int Engine_init(EngineObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"fsm_table", "verify_checksums", "port", "record",
                             "zeek_timers", "likely_server_ports", "bpf", "count", "stream",
                             "order_end", "idle_ns", "sweep_every", NULL};
    Py_buffer table;
    int verify = 0, port = -1, zeek_timers = 0, stream = 0, order_end = 0;
    long long record = -1, idle_ns = 0;
    unsigned long long count = 0;
    unsigned int sweep_every = 0; /* tests only (track.h) */
    PyObject *likely = Py_None, *bpf = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*|$piLpOOKppLI", kwlist, &table, &verify,
                                     &port, &record, &zeek_timers, &likely, &bpf, &count,
                                     &stream, &order_end, &idle_ns, &sweep_every))
        return -1;
    if (idle_ns < 0) {
        PyBuffer_Release(&table);
        PyErr_SetString(PyExc_ValueError, "idle_ns must be 0 (never) or positive");
        return -1;
    }
    if (stream && record != -1) {
        PyBuffer_Release(&table);
        PyErr_SetString(PyExc_ValueError, "a streamed read keeps no packet rows");
        return -1;
    }
    uint8_t *likely_bits = NULL;
    if (likely != Py_None) { /* a collection of ports: Zeek's likely_server_ports */
        PyObject *seq = PySequence_Fast(likely, "likely_server_ports must be a collection");
        if (!seq) { PyBuffer_Release(&table); return -1; }
        likely_bits = calloc(65536 / 8, 1);
        if (!likely_bits) { Py_DECREF(seq); PyBuffer_Release(&table); PyErr_NoMemory(); return -1; }
        for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(seq); j++) {
            long p = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, j));
            if (p < 0 || p > 65535) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "a port is not in 0..65535");
                free(likely_bits);
                Py_DECREF(seq);
                PyBuffer_Release(&table);
                return -1;
            }
            likely_bits[p >> 3] |= (uint8_t)(1u << (p & 7));
        }
        Py_DECREF(seq);
    }
    if (table.len != N_TCP_STATES * N_INPUTS) {
        PyBuffer_Release(&table);
        PyErr_SetString(PyExc_ValueError, "fsm_table has the wrong size");
        return -1;
    }
    if (!self->lock && !(self->lock = PyThread_allocate_lock())) {
        free(likely_bits);
        PyBuffer_Release(&table);
        PyErr_NoMemory();
        return -1;
    }
    engine_lock(self); /* __init__ called again while another thread feeds */
    if (self->ready) {
        framer_free(&self->framer);
        tracker_free(&self->tracker);
        self->ready = 0;
    }
    framer_init(&self->framer);
    int rc = tracker_init(&self->tracker, table.buf);
    PyBuffer_Release(&table);
    if (rc) { engine_unlock(self); free(likely_bits); PyErr_NoMemory(); return -1; }
    self->tracker.likely_ports = likely_bits;
    self->tracker.verify_checksums = verify;
    self->tracker.port_filter = port;
    self->tracker.record_conn = record;
    self->tracker.zeek_timers = zeek_timers;
    self->tracker.max_packets = count;
    self->tracker.stream = stream;
    self->tracker.order_end = order_end;
    self->tracker.idle_ns = idle_ns;
    self->tracker.sweep_every = sweep_every;
    self->framer.stop = &self->tracker.stop;
    self->ready = 1;
    int bad = bpf != Py_None && set_bpf(&self->tracker, bpf) < 0;
    engine_unlock(self);
    if (bad) return -1;
    return 0;
}

static PyObject *Engine_feed(EngineObject *self, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return NULL;
    long n;
    Py_BEGIN_ALLOW_THREADS
    n = framer_feed(&self->framer, b.buf, (size_t)b.len, tracker_frame, &self->tracker);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&b);
    if (self->tracker.oom) return PyErr_NoMemory();
    if (n < 0) {
        PyErr_SetObject(FormatError, Py_BuildValue("(sKK)", self->framer.err,
                                                   (unsigned long long)self->framer.offset,
                                                   (unsigned long long)self->framer.packets));
        return NULL;
    }
    return PyLong_FromLong(n);
}

/* feed_frames(data): records already framed and put in time order by a Merger
 * (csrc/merge.c), tracked as the packets of one capture. */
static PyObject *Engine_feed_frames(EngineObject *self, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return NULL;
    long n;
    Py_BEGIN_ALLOW_THREADS
    n = frames_feed(b.buf, (size_t)b.len, tracker_frame, &self->tracker);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&b);
    if (self->tracker.oom) return PyErr_NoMemory();
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "feed_frames: not a Merger.drain() buffer");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Engine_feed_segment(EngineObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"ts_ns", "src", "dst", "sport", "dport", "flags", "seq", "ack",
                             "payload_len", "win", "mss", "wscale", "sack_ok", "ts_ok",
                             "pkt_no", "ip_len", "csum_bad", "payload_cut", NULL};
    long long ts, ip_len = -1;
    unsigned long long pkt_no = 0;
    Py_buffer src, dst;
    unsigned int sport, dport, flags, seq = 0, ack = 0, len = 0, win = 65535;
    int mss = -1, wscale = -1, sack = 0, tsok = 0, csum_bad = 0, cut = 0;
    /* pkt_no: the packet's number in its file (0: the next one); ip_len: the IP total
     * length (-1: headers without options plus the payload); csum_bad: a checksum found
     * wrong (Zeek's C); payload_cut: the capture does not hold the whole payload. */
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Ly*y*III|IIIIiipp$KLpp", kwlist, &ts, &src,
                                     &dst, &sport, &dport, &flags, &seq, &ack, &len, &win,
                                     &mss, &wscale, &sack, &tsok, &pkt_no, &ip_len, &csum_bad,
                                     &cut))
        return NULL;
    Segment s;
    memset(&s, 0, sizeof s);
    if (src.len != dst.len || (src.len != 4 && src.len != 16)) {
        PyBuffer_Release(&src);
        PyBuffer_Release(&dst);
        PyErr_SetString(PyExc_ValueError, "addresses must both be 4 or 16 bytes");
        return NULL;
    }
    s.family = src.len == 4 ? 4 : 6;
    memcpy(s.src, src.buf, (size_t)src.len);
    memcpy(s.dst, dst.buf, (size_t)dst.len);
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    if (pkt_no) {
        if (pkt_no > self->tracker.frames) self->tracker.frames = pkt_no;
        s.pkt_no = pkt_no;
    } else {
        s.pkt_no = ++self->tracker.frames;
    }
    s.ts_ns = framer_time(&self->framer, ts, s.pkt_no);
    s.sport = (uint16_t)sport;
    s.dport = (uint16_t)dport;
    s.flags = (uint8_t)flags;
    s.seq = seq;
    s.ack = ack;
    s.payload_len = len;
    s.win = (uint16_t)win;
    s.ip_len = ip_len >= 0 ? (uint32_t)ip_len : len + (s.family == 4 ? 40 : 60);
    s.csum_bad = (uint8_t)csum_bad;
    s.payload_cut = (uint8_t)cut;
    s.mss = mss;
    s.wscale = (int16_t)wscale;
    s.sack_ok = (uint8_t)sack;
    s.ts_present = (uint8_t)tsok;
    self->tracker.decoded[DEC_TCP]++;
    tracker_segment(&self->tracker, &s);
    if (self->tracker.oom) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* note_time(ts_ns, pkt_no): a packet the tracker does not get (not TCP) still has its time
 * checked against the engine's range, as the framer checks every packet it frames. */
static PyObject *Engine_note_time(EngineObject *self, PyObject *args) {
    long long ts;
    unsigned long long pkt_no;
    if (!PyArg_ParseTuple(args, "LK", &ts, &pkt_no)) return NULL;
    framer_time(&self->framer, ts, pkt_no);
    Py_RETURN_NONE;
}

static PyObject *Engine_finish(EngineObject *self, PyObject *unused) {
    tracker_finish(&self->tracker);
    Py_RETURN_NONE;
}

static PyObject *Engine_stats(EngineObject *self, PyObject *unused) {
    Tracker *t = &self->tracker;
    return Py_BuildValue(
        "{sKsKsKsKsKsKsKsKsKsKsIsKsKsisKsKsKsKsisKsKsK}", "frames", (unsigned long long)t->frames,
        "tcp",
        (unsigned long long)t->decoded[DEC_TCP], "not_tcp",
        (unsigned long long)t->decoded[DEC_NOT_TCP], "not_ip",
        (unsigned long long)t->decoded[DEC_NOT_IP], "fragments",
        (unsigned long long)t->decoded[DEC_FRAGMENT], "short",
        (unsigned long long)t->decoded[DEC_SHORT], "bad_tcp_header",
        (unsigned long long)t->decoded[DEC_BAD_TCP], "skipped_port",
        (unsigned long long)t->skipped_port, "bad_checksum",
        (unsigned long long)t->bad_checksum, "bytes_framed",
        (unsigned long long)self->framer.offset, "connections", t->n_ids, "packets_framed",
        (unsigned long long)self->framer.packets, "transitions",
        (unsigned long long)t->n_trans, "format", self->framer.format, "ts_clamped",
        (unsigned long long)self->framer.ts_clamped, "ts_clamped_first",
        (unsigned long long)self->framer.ts_clamped_first, "filtered",
        (unsigned long long)t->filtered, "filter_inapplicable",
        (unsigned long long)t->filter_inapplicable, "count_reached", t->stop, "open", (unsigned long long)t->n_live,
        "written", (unsigned long long)t->written, "time_back_late",
        (unsigned long long)t->skew_late_pkt);
}

static PyObject *Engine_conn_count(EngineObject *self, PyObject *unused) {
    return PyLong_FromUnsignedLong(self->tracker.n_ids);
}

static int not_streamed(EngineObject *self) {
    if (!self->tracker.stream) return 0;
    PyErr_SetString(PyExc_RuntimeError, "a streamed engine keeps no connection by id: take()");
    return -1;
}

/* Column widths, from columns.h: one table for the allocation and the checks. */
#define SPEC(name, code, type, per) {#name, code, sizeof(type) * (per), per},
typedef struct { const char *name, *code; size_t width; int per; } ColSpec;
static const ColSpec FIXED[] = {CONN_FIXED_COLUMNS(SPEC)};
#undef SPEC
#define SPEC(name, code, type, per) {"trans." #name, code, sizeof(type) * (per), per},
static const ColSpec TRANS[] = {TRANS_COLUMNS(SPEC)};
#undef SPEC
#define NAME(name) #name,
static const char *const STRINGS[] = {CONN_STRING_COLUMNS(NAME)};
#undef NAME
enum { N_FIXED = sizeof FIXED / sizeof *FIXED, N_TRANS = sizeof TRANS / sizeof *TRANS };

/* The typed pointers of a ConnCols, in FIXED / STRINGS / TRANS order. */
static void **fixed_slot(ConnCols *p, int j) {
    void **slots[] = {
#define SLOT(name, code, type, per) (void **)&p->name,
        CONN_FIXED_COLUMNS(SLOT)
#undef SLOT
    };
    return slots[j];
}
static void **trans_slot(ConnCols *p, int j) {
    void **slots[] = {
#define SLOT(name, code, type, per) (void **)&p->tr.name,
        TRANS_COLUMNS(SLOT)
#undef SLOT
    };
    return slots[j];
}
static int32_t **string_off_slot(ConnCols *p, int j) {
    int32_t **slots[] = {
#define SLOT(name) &p->name##_off,
        CONN_STRING_COLUMNS(SLOT)
#undef SLOT
    };
    return slots[j];
}
static char **string_slot(ConnCols *p, int j) {
    char **slots[] = {
#define SLOT(name) &p->name,
        CONN_STRING_COLUMNS(SLOT)
#undef SLOT
    };
    return slots[j];
}

static int put_new_column(PyObject *out, const char *name, size_t size, void **ptr) {
    PyObject *col = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (!col) return -1;
    *ptr = PyBytes_AS_STRING(col);
    int rc = PyDict_SetItemString(out, name, col);
    Py_DECREF(col);
    return rc;
}

/* The connections list[0 .. n) as the typed columns of csrc/columns.h, plus "n". */
static PyObject *columns_of(Tracker *t, Conn *const *list, size_t n) {
    size_t n_tr = cols_trans_count(t, list, n);
    ConnCols p;
    memset(&p, 0, sizeof p);
    p.n = n;
    Buf str[COLS_N_STRINGS];
    memset(str, 0, sizeof str);
    PyObject *out = PyDict_New();
    if (!out) return NULL;
    char offname[64];
    for (int j = 0; j < N_FIXED; j++)
        if (put_new_column(out, FIXED[j].name, n * FIXED[j].width, fixed_slot(&p, j)) < 0)
            goto fail;
    for (int j = 0; j < N_TRANS; j++)
        if (put_new_column(out, TRANS[j].name, n_tr * TRANS[j].width, trans_slot(&p, j)) < 0)
            goto fail;
    if (put_new_column(out, "trans.offsets", (n + 1) * 4, (void **)&p.trans_off) < 0)
        goto fail;
    for (int j = 0; j < COLS_N_STRINGS; j++) {
        snprintf(offname, sizeof offname, "%s.offsets", STRINGS[j]);
        if (put_new_column(out, offname, (n + 1) * 4, (void **)string_off_slot(&p, j)) < 0)
            goto fail;
    }
    if (cols_fill(t, list, &p, str) < 0) { PyErr_NoMemory(); goto fail; }
    for (int j = 0; j < COLS_N_STRINGS; j++) {
        PyObject *col = PyBytes_FromStringAndSize(str[j].data ? str[j].data : "",
                                                  (Py_ssize_t)str[j].len);
        if (!col || PyDict_SetItemString(out, STRINGS[j], col) < 0) { Py_XDECREF(col); goto fail; }
        Py_DECREF(col);
        free(str[j].data);
        str[j].data = NULL;
    }
    PyObject *rows = PyLong_FromSize_t(n);
    if (!rows || PyDict_SetItemString(out, "n", rows) < 0) { Py_XDECREF(rows); goto fail; }
    Py_DECREF(rows);
    return out;
fail:
    for (int j = 0; j < COLS_N_STRINGS; j++) free(str[j].data);
    Py_DECREF(out);
    return NULL;
}

static int names_set(void) {
    if (NAMES_STATE[0]) return 0;
    PyErr_SetString(PyExc_RuntimeError, "set_names() was not called"); /* text columns */
    return -1;
}

/* columns(start, count) -> {name: bytes}: connections [start, start + count) (by id) as
 * the typed columns of csrc/columns.h, plus "n" (the number of rows). */
static PyObject *Engine_columns(EngineObject *self, PyObject *args) {
    Py_ssize_t start, count;
    if (!PyArg_ParseTuple(args, "nn", &start, &count)) return NULL;
    if (names_set() < 0 || not_streamed(self) < 0) return NULL;
    Tracker *t = &self->tracker;
    if (start < 0) start = 0;
    if ((size_t)start > t->n_conns) start = (Py_ssize_t)t->n_conns;
    size_t n = count < 0 ? 0 : (size_t)count;
    if (n > t->n_conns - (size_t)start) n = t->n_conns - (size_t)start;
    Conn **list = malloc((n ? n : 1) * sizeof *list);
    if (!list) return PyErr_NoMemory();
    for (size_t i = 0; i < n; i++) list[i] = &t->conns[(size_t)start + i];
    PyObject *out = columns_of(t, list, n);
    free(list);
    return out;
}

/* take(limit, final=False) -> {name: bytes}: a streamed engine's connections written out
 * since (at most limit), as columns() gives them, their memory then reused. With final
 * (after finish()) every connection left. Output order: by id, or as they ended
 * (order_end), ids being given by first packet. */
static PyObject *Engine_take(EngineObject *self, PyObject *args) {
    Py_ssize_t limit;
    int final = 0;
    if (!PyArg_ParseTuple(args, "n|p", &limit, &final)) return NULL;
    if (names_set() < 0) return NULL;
    Tracker *t = &self->tracker;
    if (!t->stream) {
        PyErr_SetString(PyExc_RuntimeError, "take() needs an engine made with stream=True");
        return NULL;
    }
    if (limit < 1) limit = 1;
    if (limit > 1 << 20) limit = 1 << 20;
    uint32_t *slots = malloc((size_t)limit * sizeof *slots);
    Conn **list = malloc((size_t)limit * sizeof *list);
    if (!slots || !list) { free(slots); free(list); return PyErr_NoMemory(); }
    long n = stream_take(t, slots, (uint32_t)limit, final);
    PyObject *out = NULL;
    if (n < 0) {
        PyErr_NoMemory();
    } else {
        for (long i = 0; i < n; i++) list[i] = &t->conns[slots[i]];
        out = columns_of(t, list, (size_t)n);
        stream_release(t, slots, (uint32_t)n); /* written out either way */
    }
    free(slots);
    free(list);
    return out;
}

/* Bind a ConnCols to the buffers of a columns() dict, checking every size and every
 * value used as an index into a name table, so no dict makes the renderers read out of
 * bounds. views[] holds the buffers until release_views(). */
enum { N_VIEWS = N_FIXED + N_TRANS + 1 + 2 * COLS_N_STRINGS };
static int bind_view(PyObject *cols, const char *name, size_t want, Py_buffer *view,
                     void **ptr) {
    PyObject *obj = PyDict_GetItemString(cols, name);
    if (!obj) { PyErr_Format(PyExc_KeyError, "column %s missing", name); return -1; }
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0) return -1;
    if (want != (size_t)-1 && (size_t)view->len != want) {
        PyBuffer_Release(view);
        view->obj = NULL;
        PyErr_Format(PyExc_ValueError, "column %s has the wrong size", name);
        return -1;
    }
    *ptr = view->buf;
    return 0;
}

static void release_views(Py_buffer *views, int k) {
    for (int j = 0; j < k; j++)
        if (views[j].obj) PyBuffer_Release(&views[j]);
}

static int offsets_ok(const int32_t *off, size_t n, size_t limit) {
    if (off[0] != 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (off[i + 1] < off[i]) return 0;
    return (size_t)off[n] <= limit;
}

static int bind_columns(PyObject *cols, ConnCols *p, Py_buffer *views, int *k) {
    memset(p, 0, sizeof *p);
    PyObject *nobj = PyDict_GetItemString(cols, "n");
    if (!nobj) { PyErr_SetString(PyExc_KeyError, "column n missing"); return -1; }
    size_t n = PyLong_AsSize_t(nobj);
    if (n == (size_t)-1 && PyErr_Occurred()) return -1;
    p->n = n;
    char offname[64];
    for (int j = 0; j < N_FIXED; j++)
        if (bind_view(cols, FIXED[j].name, n * FIXED[j].width, &views[(*k)++],
                      fixed_slot(p, j)) < 0)
            return -1;
    if (bind_view(cols, "trans.offsets", (n + 1) * 4, &views[(*k)++], (void **)&p->trans_off))
        return -1;
    size_t n_tr = (size_t)p->trans_off[n];
    if (!offsets_ok(p->trans_off, n, (size_t)INT32_MAX)) goto bad;
    for (int j = 0; j < N_TRANS; j++)
        if (bind_view(cols, TRANS[j].name, n_tr * TRANS[j].width, &views[(*k)++],
                      trans_slot(p, j)) < 0)
            return -1;
    for (int j = 0; j < COLS_N_STRINGS; j++) {
        snprintf(offname, sizeof offname, "%s.offsets", STRINGS[j]);
        int32_t **off = string_off_slot(p, j);
        if (bind_view(cols, offname, (n + 1) * 4, &views[(*k)++], (void **)off) < 0 ||
            bind_view(cols, STRINGS[j], (size_t)-1, &views[(*k)++],
                      (void **)string_slot(p, j)) < 0)
            return -1;
        if (!offsets_ok(*off, n, (size_t)views[*k - 1].len)) goto bad;
    }
    for (size_t i = 0; i < n; i++)
        if (p->conn_state[i] >= 13 || p->close_kind[i] >= 8) goto bad;
    for (size_t j = 0; j < n_tr; j++)
        if (p->tr.state[j] >= N_TCP_STATES || p->tr.input[j] >= N_INPUTS) goto bad;
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError, "columns hold values out of range");
    return -1;
}

/* render(columns, format, tag=None, uid_seed="") -> bytes: rows of a columns() batch as
 * "jsonl", "csv" or "zeek" text (csrc/columns.c). */
static PyObject *render(PyObject *mod, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"columns", "format", "tag", "uid_seed", NULL};
    PyObject *cols;
    const char *fmt, *tag = NULL, *seed = "";
    Py_ssize_t tag_len = 0, seed_len = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!s|z#s#", kwlist, &PyDict_Type, &cols, &fmt,
                                     &tag, &tag_len, &seed, &seed_len))
        return NULL;
    int which = strcmp(fmt, "jsonl") == 0 ? RENDER_JSONL : strcmp(fmt, "csv") == 0 ? RENDER_CSV
                : strcmp(fmt, "zeek") == 0 ? RENDER_ZEEK : -1;
    if (which < 0) { PyErr_Format(PyExc_ValueError, "unknown format %s", fmt); return NULL; }
    if (!NAMES_STATE[0]) {
        PyErr_SetString(PyExc_RuntimeError, "set_names() was not called");
        return NULL;
    }
    ConnCols p;
    Py_buffer views[N_VIEWS];
    memset(views, 0, sizeof views);
    int k = 0;
    if (bind_columns(cols, &p, views, &k) < 0) { release_views(views, k); return NULL; }
    Buf out = {0};
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = render_batch(&p, which, tag, (size_t)tag_len, seed, (size_t)seed_len, &out);
    Py_END_ALLOW_THREADS
    release_views(views, k);
    if (rc < 0) { free(out.data); return PyErr_NoMemory(); }
    PyObject *res = PyBytes_FromStringAndSize(out.data ? out.data : "", (Py_ssize_t)out.len);
    free(out.data);
    return res;
}

/* (name, struct code, values per row) of every fixed-width column, for analyzer.results. */
static PyObject *column_specs(void) {
    PyObject *fixed = PyTuple_New(N_FIXED + N_TRANS);
    if (!fixed) return NULL;
    for (int j = 0; j < N_FIXED + N_TRANS; j++) {
        const ColSpec *s = j < N_FIXED ? &FIXED[j] : &TRANS[j - N_FIXED];
        PyObject *item = Py_BuildValue("(ssi)", s->name, s->code, s->per);
        if (!item) { Py_DECREF(fixed); return NULL; }
        PyTuple_SET_ITEM(fixed, j, item);
    }
    return fixed;
}

/* Transitions not handed out before, in the order they happened:
 * [(conn_id, role, state, ts_ns, pkt_no, how, input)]. For live views. */
static PyObject *Engine_drain_transitions(EngineObject *self, PyObject *unused) {
    if (not_streamed(self) < 0) return NULL;
    Tracker *t = &self->tracker;
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    for (uint32_t k = t->transitions_read; k < t->n_trans; k++) {
        const Transition *tr = &t->trans[k];
        if (tr->how == HOW_RETRACTED) continue;
        const Conn *c = &t->conns[tr->conn];
        PyObject *item = Py_BuildValue("(IiiLKii)", tr->conn, tr->side == c->orig ? 0 : 1,
                                       tr->state, (long long)tr->ts_ns,
                                       (unsigned long long)tr->pkt_no, tr->how,
                                       tr->input == 0xFF ? -1 : tr->input);
        if (!item || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(item);
    }
    t->transitions_read = t->n_trans;
    return out;
}

/* Recorded packet rows: [(pkt_no, ts_ns, conn, from_client, flags, seq, ack, len, win,
 * client_state, server_state, unexpected, anomalies, dup_ack_num)]. */
static PyObject *Engine_rows(EngineObject *self, PyObject *unused) {
    if (not_streamed(self) < 0) return NULL;
    Tracker *t = &self->tracker;
    PyObject *out = PyList_New((Py_ssize_t)t->n_rows);
    if (!out) return NULL;
    for (uint64_t k = 0; k < t->n_rows; k++) {
        const PacketRow *r = &t->rows[k];
        const Conn *c = &t->conns[r->conn];
        PyObject *item = Py_BuildValue(
            "(KLIOIkkkIiiOII)", (unsigned long long)r->pkt_no, (long long)r->ts_ns, r->conn,
            r->from_side == c->orig ? Py_True : Py_False, (unsigned)r->flags,
            (unsigned long)r->seq, (unsigned long)r->ack, (unsigned long)r->len,
            (unsigned)r->win, r->state[c->orig] == ST_NONE ? -1 : r->state[c->orig],
            r->state[c->orig ^ 1] == ST_NONE ? -1 : r->state[c->orig ^ 1],
            r->unexpected ? Py_True : Py_False, r->anomalies, r->dup_ack_num);
        if (!item) { Py_DECREF(out); return NULL; }
        PyList_SET_ITEM(out, (Py_ssize_t)k, item);
    }
    return out;
}

/* row_columns(conn=-1) -> {name: bytes}: the recorded rows (of one connection, or all)
 * column by column as packed native arrays, for numpy.frombuffer without a Python object
 * per packet. Types: analyzer.columns.ROW_DTYPES. */
static PyObject *Engine_row_columns(EngineObject *self, PyObject *args) {
    long long want = -1;
    if (!PyArg_ParseTuple(args, "|L", &want)) return NULL;
    Tracker *t = &self->tracker;
    uint64_t n = 0;
    for (uint64_t k = 0; k < t->n_rows; k++) n += want < 0 || t->rows[k].conn == want;
    enum { N_COLS = 14 };
    static const char *names[N_COLS] = {"pkt_no", "ts_ns", "conn", "from_client", "flags",
                                        "seq", "ack", "len", "win", "client_state",
                                        "server_state", "unexpected", "anomalies",
                                        "dup_ack_num"};
    static const size_t width[N_COLS] = {8, 8, 4, 1, 1, 4, 4, 4, 2, 1, 1, 1, 4, 4};
    PyObject *cols[N_COLS] = {0};
    char *p[N_COLS];
    for (int j = 0; j < N_COLS; j++) {
        cols[j] = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * width[j]));
        if (!cols[j]) goto fail;
        p[j] = PyBytes_AS_STRING(cols[j]);
    }
    uint64_t i = 0;
    for (uint64_t k = 0; k < t->n_rows; k++) {
        const PacketRow *r = &t->rows[k];
        if (want >= 0 && r->conn != want) continue;
        const Conn *c = &t->conns[r->conn];
        uint8_t fc = r->from_side == c->orig;
        int8_t cs = r->state[c->orig] == ST_NONE ? -1 : (int8_t)r->state[c->orig];
        int8_t ss = r->state[c->orig ^ 1] == ST_NONE ? -1 : (int8_t)r->state[c->orig ^ 1];
#define PUT(j, v) memcpy(p[j] + i * width[j], &(v), width[j])
        PUT(0, r->pkt_no); PUT(1, r->ts_ns); PUT(2, r->conn); PUT(3, fc); PUT(4, r->flags);
        PUT(5, r->seq); PUT(6, r->ack); PUT(7, r->len); PUT(8, r->win); PUT(9, cs);
        PUT(10, ss); PUT(11, r->unexpected); PUT(12, r->anomalies); PUT(13, r->dup_ack_num);
#undef PUT
        i++;
    }
    PyObject *out = PyDict_New();
    if (!out) goto fail;
    for (int j = 0; j < N_COLS; j++) {
        if (PyDict_SetItemString(out, names[j], cols[j]) < 0) { Py_DECREF(out); goto fail; }
        Py_CLEAR(cols[j]);
    }
    return out;
fail:
    for (int j = 0; j < N_COLS; j++) Py_XDECREF(cols[j]);
    return NULL;
}

LOCKED_1(Engine_feed)
LOCKED_1(Engine_feed_frames)
LOCKED_KW(Engine_feed_segment)
LOCKED_1(Engine_note_time)
LOCKED_1(Engine_finish)
LOCKED_1(Engine_stats)
LOCKED_1(Engine_conn_count)
LOCKED_1(Engine_columns)
LOCKED_1(Engine_take)
LOCKED_1(Engine_rows)
LOCKED_1(Engine_row_columns)
LOCKED_1(Engine_drain_transitions)

/* Every entry is a *_locked wrapper (see EngineObject): M() makes sure of it. */
#define M(name, fn, flags, doc) {name, (PyCFunction)(void (*)(void))fn##_locked, flags, doc}
static PyMethodDef Engine_methods[] = {
    M("feed", Engine_feed, METH_O,
      "feed(data) -> bytes consumed: frame, decode and track every complete record."),
    M("feed_frames", Engine_feed_frames, METH_O,
      "feed_frames(data): track the framed records of Merger.drain()."),
    M("feed_segment", Engine_feed_segment, METH_VARARGS | METH_KEYWORDS,
      "Track one already-decoded TCP segment."),
    M("note_time", Engine_note_time, METH_VARARGS,
      "note_time(ts_ns, pkt_no): count a time out of range for a packet not fed."),
    M("finish", Engine_finish, METH_NOARGS,
      "End of input: classify every connection's close and Zeek conn_state."),
    M("stats", Engine_stats, METH_NOARGS, "Counters as a dict."),
    M("conn_count", Engine_conn_count, METH_NOARGS, "Number of connections."),
    M("columns", Engine_columns, METH_VARARGS,
      "columns(start, count) -> {name: bytes}: those connections' records as typed columns "
      "(csrc/columns.h)."),
    M("take", Engine_take, METH_VARARGS,
      "take(limit, final=False) -> {name: bytes}: a streamed engine's connections written "
      "out since the last call (at most limit; with final, after finish(), all the rest)."),
    M("rows", Engine_rows, METH_NOARGS, "Recorded per-packet rows."),
    M("row_columns", Engine_row_columns, METH_VARARGS,
      "row_columns(conn=-1) -> {name: bytes}: recorded rows as packed column arrays."),
    M("drain_transitions", Engine_drain_transitions, METH_NOARGS,
      "Transitions since the last call: [(conn_id, role, state, ts_ns, pkt_no, how, input)]."),
    {NULL, NULL, 0, NULL}};
#undef M

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "analyzer._engine.Engine",
    .tp_basicsize = sizeof(EngineObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Frames, decodes and tracks TCP connections (no I/O).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
};

static int copy_names(PyObject *seq, const char **dst, Py_ssize_t want) {
    PyObject *fast = PySequence_Fast(seq, "names must be a sequence");
    if (!fast) return -1;
    if (PySequence_Fast_GET_SIZE(fast) != want) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "wrong number of names");
        return -1;
    }
    for (Py_ssize_t i = 0; i < want; i++) {
        const char *txt = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(fast, i));
        if (!txt) { Py_DECREF(fast); return -1; }
        char *copy = strdup(txt);
        if (!copy) { Py_DECREF(fast); PyErr_NoMemory(); return -1; }
        free((char *)dst[i]);
        dst[i] = copy;
    }
    Py_DECREF(fast);
    return 0;
}

static PyObject *set_names(PyObject *mod, PyObject *args) {
    PyObject *st, *in, *cs, *ck, *an;
    if (!PyArg_ParseTuple(args, "OOOOO", &st, &in, &cs, &ck, &an)) return NULL;
    if (copy_names(st, NAMES_STATE, N_TCP_STATES) || copy_names(in, NAMES_INPUT, N_INPUTS) ||
        copy_names(cs, NAMES_CS, 13) || copy_names(ck, NAMES_CK, 8) ||
        copy_names(an, NAMES_ANOMALY, AN__COUNT))
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"render", (PyCFunction)(void (*)(void))render, METH_VARARGS | METH_KEYWORDS,
     "render(columns, format, tag=None, uid_seed='') -> bytes: a columns() batch as jsonl, "
     "csv or zeek rows."},
    {"set_names", set_names, METH_VARARGS,
     "set_names(states, inputs, conn_states, close_kinds, anomalies): names for render()."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "analyzer._engine",
                                       "Compiled core of handshake-analyzer.", -1,
                                       module_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__engine(void) {
    if (PyType_Ready(&EngineType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    FormatError = PyErr_NewException("analyzer._engine.FormatError", PyExc_ValueError, NULL);
    Py_INCREF(&EngineType);
    PyModule_AddObject(m, "Engine", (PyObject *)&EngineType);
    PyModule_AddObject(m, "FormatError", FormatError);
    PyObject *specs = column_specs();
    if (!specs || PyModule_AddObject(m, "COLUMNS", specs) < 0) { Py_XDECREF(specs); return NULL; }
    PyObject *strings = PyTuple_New(COLS_N_STRINGS);
    for (int j = 0; strings && j < COLS_N_STRINGS; j++)
        PyTuple_SET_ITEM(strings, j, PyUnicode_FromString(STRINGS[j]));
    if (!strings || PyModule_AddObject(m, "STRING_COLUMNS", strings) < 0) {
        Py_XDECREF(strings);
        return NULL;
    }
    if (merge_register(m, FormatError) < 0) return NULL;
    return m;
}
