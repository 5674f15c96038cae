/* Several captures as one, in time order, as mergecap merges them.
 *
 * analyzer._engine.Merger keeps one Framer per input file. feed(i, bytes) frames input
 * i's complete records into its queue; drain() hands out queued packets in time order
 * (equal times: lower input index first; one input's packets keep their file order) for
 * as long as every input that is still open has a packet queued, so that no later
 * packet of a file that has not been read far enough can be earlier. The result is a
 * buffer of "framed records" that Engine.feed_frames tracks like packets of one file.
 * Nothing here reads a file. The tracker numbers packets in the merged order; origins()
 * maps those numbers back to (input, packet number in that input) as runs. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include "framing.h"
#include "merge.h"

typedef struct {
    uint8_t *data;
    size_t len, cap, start;   /* live bytes are data[start, len) */
} Bytes;

static int bytes_reserve(Bytes *b, size_t more) {
    if (b->start && b->start == b->len) b->start = b->len = 0;
    if (b->len + more <= b->cap) return 0;
    if (b->start > b->cap / 2) { /* compact before growing: buffering stays linear */
        memmove(b->data, b->data + b->start, b->len - b->start);
        b->len -= b->start;
        b->start = 0;
        if (b->len + more <= b->cap) return 0;
    }
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + more) cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

typedef struct {
    Framer framer;
    Bytes pending;            /* bytes of an incomplete record */
    Bytes queue;              /* framed records (FrameHdr + data) not handed out yet */
    uint64_t queued;          /* records in queue */
    uint64_t emitted;         /* records handed out: the number of the last one in its file */
    int closed;
    int oom;
} Input;

typedef struct {
    PyObject_HEAD
    Input *in;
    Py_ssize_t n;
    Py_ssize_t *heap;         /* inputs with queued records, by (head time, index) */
    Py_ssize_t n_heap;
    uint64_t merged;          /* records handed out in all */
    Py_ssize_t last_input;    /* input of the last record handed out */
    uint64_t *runs;           /* (first merged number, input, first number in input) */
    size_t n_runs, cap_runs;
} MergerObject;

static PyObject *format_error; /* analyzer._engine.FormatError, set by merge_register */

static void queue_frame(void *ctx, uint32_t linktype, int64_t ts_ns, const uint8_t *data,
                        size_t caplen, uint32_t origlen) {
    Input *in = ctx;
    size_t padded = (caplen + 7) & ~(size_t)7;
    if (in->oom || bytes_reserve(&in->queue, sizeof(FrameHdr) + padded)) {
        in->oom = 1;
        return;
    }
    FrameHdr h = {ts_ns, linktype, (uint32_t)caplen, origlen, 0};
    uint8_t *p = in->queue.data + in->queue.len;
    memcpy(p, &h, sizeof h);
    memcpy(p + sizeof h, data, caplen);
    in->queue.len += sizeof h + padded;
    in->queued++;
}

static int64_t head_ts(const Input *in) {
    FrameHdr h;
    memcpy(&h, in->queue.data + in->queue.start, sizeof h);
    return h.ts_ns;
}

/* (time, index) order: the earlier packet first, the earlier file on a tie. */
static int before(const MergerObject *m, Py_ssize_t a, Py_ssize_t b) {
    int64_t ta = head_ts(&m->in[a]), tb = head_ts(&m->in[b]);
    return ta < tb || (ta == tb && a < b);
}

static void heap_down(MergerObject *m, Py_ssize_t k) {
    for (;;) {
        Py_ssize_t l = 2 * k + 1, r = l + 1, best = k;
        if (l < m->n_heap && before(m, m->heap[l], m->heap[best])) best = l;
        if (r < m->n_heap && before(m, m->heap[r], m->heap[best])) best = r;
        if (best == k) return;
        Py_ssize_t t = m->heap[k];
        m->heap[k] = m->heap[best];
        m->heap[best] = t;
        k = best;
    }
}

static void heap_push(MergerObject *m, Py_ssize_t i) {
    Py_ssize_t k = m->n_heap++;
    m->heap[k] = i;
    while (k > 0) {
        Py_ssize_t p = (k - 1) / 2;
        if (!before(m, m->heap[k], m->heap[p])) break;
        Py_ssize_t t = m->heap[k];
        m->heap[k] = m->heap[p];
        m->heap[p] = t;
        k = p;
    }
}

static void Merger_dealloc(MergerObject *m) {
    for (Py_ssize_t i = 0; i < m->n; i++) {
        framer_free(&m->in[i].framer);
        free(m->in[i].pending.data);
        free(m->in[i].queue.data);
    }
    free(m->in);
    free(m->heap);
    free(m->runs);
    Py_TYPE(m)->tp_free((PyObject *)m);
}

static int Merger_init(MergerObject *m, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"inputs", NULL};
    Py_ssize_t n;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "n", kwlist, &n)) return -1;
    if (m->in || n < 1) {
        PyErr_SetString(PyExc_ValueError, "a Merger needs at least one input (once)");
        return -1;
    }
    m->in = calloc((size_t)n, sizeof *m->in);
    m->heap = calloc((size_t)n, sizeof *m->heap);
    if (!m->in || !m->heap) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < n; i++) framer_init(&m->in[i].framer);
    m->n = n;
    m->last_input = -1;
    return 0;
}

static int in_heap(const MergerObject *m, Py_ssize_t i) {
    return m->in[i].queued > 0; /* an input is in the heap exactly while it has records */
}

static Input *input_arg(MergerObject *m, Py_ssize_t i) {
    if (i < 0 || i >= m->n) {
        PyErr_SetString(PyExc_IndexError, "no such input");
        return NULL;
    }
    return &m->in[i];
}

/* feed(i, data) -> records framed. Raises FormatError(message, offset, packets) for a
 * corrupt record of input i (the records before it are queued). */
static PyObject *Merger_feed(MergerObject *m, PyObject *args) {
    Py_ssize_t i;
    Py_buffer b;
    if (!PyArg_ParseTuple(args, "ny*", &i, &b)) return NULL;
    Input *in = input_arg(m, i);
    if (!in || in->closed) {
        if (in) PyErr_SetString(PyExc_ValueError, "input is closed");
        PyBuffer_Release(&b);
        return NULL;
    }
    if (bytes_reserve(&in->pending, (size_t)b.len)) {
        PyBuffer_Release(&b);
        return PyErr_NoMemory();
    }
    memcpy(in->pending.data + in->pending.len, b.buf, (size_t)b.len);
    in->pending.len += (size_t)b.len;
    PyBuffer_Release(&b);
    int was_queued = in_heap(m, i);
    uint64_t before_n = in->queued;
    long used = 0;
    for (;;) { /* a good run before a corrupt record is framed first, then the error */
        long n = framer_feed(&in->framer, in->pending.data + in->pending.start,
                             in->pending.len - in->pending.start, queue_frame, in);
        if (n <= 0) { used = n; break; }
        in->pending.start += (size_t)n;
    }
    if (!was_queued && in->queued) heap_push(m, i);
    if (in->oom) return PyErr_NoMemory();
    if (used < 0) {
        PyErr_SetObject(format_error, Py_BuildValue("(sKK)", in->framer.err,
                                                    (unsigned long long)in->framer.offset,
                                                    (unsigned long long)in->framer.packets));
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(in->queued - before_n);
}

/* close(i) -> bytes left over: input i has no more data (0, or an incomplete record). */
static PyObject *Merger_close(MergerObject *m, PyObject *arg) {
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred()) return NULL;
    Input *in = input_arg(m, i);
    if (!in) return NULL;
    in->closed = 1;
    size_t left = in->pending.len - in->pending.start;
    free(in->pending.data);
    memset(&in->pending, 0, sizeof in->pending);
    return PyLong_FromSize_t(left);
}

/* need() -> the input to feed next (open, nothing queued), -1 when drain() can hand out
 * packets, -2 when every input is closed and drained. */
static PyObject *Merger_need(MergerObject *m, PyObject *unused) {
    for (Py_ssize_t i = 0; i < m->n; i++)
        if (!m->in[i].closed && !m->in[i].queued) return PyLong_FromSsize_t(i);
    return PyLong_FromLong(m->n_heap ? -1 : -2);
}

static int add_run(MergerObject *m, Py_ssize_t i, uint64_t local) {
    if (m->n_runs == m->cap_runs) {
        size_t cap = m->cap_runs ? m->cap_runs * 2 : 64;
        uint64_t *r = realloc(m->runs, cap * 3 * sizeof *r);
        if (!r) return -1;
        m->runs = r;
        m->cap_runs = cap;
    }
    uint64_t *r = m->runs + 3 * m->n_runs++;
    r[0] = m->merged;
    r[1] = (uint64_t)i;
    r[2] = local;
    return 0;
}

/* drain() -> bytes: queued records in time order, as long as no open input is empty
 * (its next packet could be earlier). Feed the result to Engine.feed_frames. */
static PyObject *Merger_drain(MergerObject *m, PyObject *unused) {
    Bytes out = {0};
    while (m->n_heap) {
        Py_ssize_t i = m->heap[0];
        Input *in = &m->in[i];
        FrameHdr h;
        memcpy(&h, in->queue.data + in->queue.start, sizeof h);
        size_t size = sizeof h + (((size_t)h.caplen + 7) & ~(size_t)7);
        h.input = (uint32_t)i;
        if (bytes_reserve(&out, size)) goto oom;
        memcpy(out.data + out.len, &h, sizeof h);
        memcpy(out.data + out.len + sizeof h, in->queue.data + in->queue.start + sizeof h,
               size - sizeof h);
        out.len += size;
        in->queue.start += size;
        in->queued--;
        in->emitted++;
        m->merged++;
        if (i != m->last_input && add_run(m, i, in->emitted) < 0) goto oom;
        m->last_input = i;
        if (in->queued) {
            heap_down(m, 0);
        } else {
            m->heap[0] = m->heap[--m->n_heap];
            heap_down(m, 0);
            if (!in->closed) break; /* its next packet is not framed yet */
        }
    }
    PyObject *res = PyBytes_FromStringAndSize((const char *)out.data, (Py_ssize_t)out.len);
    free(out.data);
    return res;
oom:
    free(out.data);
    return PyErr_NoMemory();
}

/* origins() -> [(first merged packet number, input, its number in that input)]: one
 * entry per run of consecutive packets from one input (1-based numbers). */
static PyObject *Merger_origins(MergerObject *m, PyObject *unused) {
    PyObject *out = PyList_New((Py_ssize_t)m->n_runs);
    if (!out) return NULL;
    for (size_t k = 0; k < m->n_runs; k++) {
        const uint64_t *r = m->runs + 3 * k;
        PyObject *t = Py_BuildValue("(KKK)", (unsigned long long)r[0],
                                    (unsigned long long)r[1], (unsigned long long)r[2]);
        if (!t) { Py_DECREF(out); return NULL; }
        PyList_SET_ITEM(out, (Py_ssize_t)k, t);
    }
    return out;
}

/* position(i) -> (bytes framed, packets framed, format) of input i. */
static PyObject *Merger_position(MergerObject *m, PyObject *arg) {
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred()) return NULL;
    Input *in = input_arg(m, i);
    if (!in) return NULL;
    return Py_BuildValue("(KKi)", (unsigned long long)in->framer.offset,
                         (unsigned long long)in->framer.packets, in->framer.format);
}

static PyMethodDef Merger_methods[] = {
    {"feed", (PyCFunction)Merger_feed, METH_VARARGS,
     "feed(i, data) -> records framed from input i's next bytes."},
    {"close", (PyCFunction)Merger_close, METH_O,
     "close(i) -> bytes of an incomplete last record: input i has ended."},
    {"need", (PyCFunction)Merger_need, METH_NOARGS,
     "need() -> input to feed next, -1: drain() can proceed, -2: all done."},
    {"drain", (PyCFunction)Merger_drain, METH_NOARGS,
     "drain() -> framed records in time order (for Engine.feed_frames)."},
    {"origins", (PyCFunction)Merger_origins, METH_NOARGS,
     "origins() -> [(merged packet number, input, packet number in input)] per run."},
    {"position", (PyCFunction)Merger_position, METH_O,
     "position(i) -> (bytes framed, packets framed, format) of input i."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject MergerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "analyzer._engine.Merger",
    .tp_basicsize = sizeof(MergerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Merger(inputs): several captures' packets in time order (no I/O).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Merger_init,
    .tp_dealloc = (destructor)Merger_dealloc,
    .tp_methods = Merger_methods,
};

long frames_feed(const uint8_t *buf, size_t len, frame_fn fn, void *ctx) {
    size_t pos = 0;
    while (len - pos >= sizeof(FrameHdr)) {
        FrameHdr h;
        memcpy(&h, buf + pos, sizeof h);
        size_t size = sizeof h + (((size_t)h.caplen + 7) & ~(size_t)7);
        if (size > len - pos) return -1;
        fn(ctx, h.linktype, h.ts_ns, buf + pos + sizeof h, h.caplen, h.origlen);
        pos += size;
    }
    return pos == len ? (long)pos : -1;
}

int merge_register(PyObject *module, PyObject *format_error_type) {
    if (PyType_Ready(&MergerType) < 0) return -1;
    format_error = format_error_type;
    Py_INCREF(&MergerType);
    if (PyModule_AddObject(module, "Merger", (PyObject *)&MergerType) < 0) {
        Py_DECREF(&MergerType);
        return -1;
    }
    return 0;
}
