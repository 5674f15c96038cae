#ifndef HS_MERGE_H
#define HS_MERGE_H
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include "framing.h"

/* One framed record in a merged stream: this header, then caplen bytes padded to 8. */
typedef struct {
    int64_t ts_ns;
    uint32_t linktype, caplen, origlen;
    uint32_t input;           /* index of the file it came from */
} FrameHdr;

/* Calls fn for every record of a Merger.drain() buffer. Returns len, or -1 when the
 * buffer is not a whole number of records. */
long frames_feed(const uint8_t *buf, size_t len, frame_fn fn, void *ctx);
/* Adds analyzer._engine.Merger to the module. */
int merge_register(PyObject *module, PyObject *format_error);
#endif
