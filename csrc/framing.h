#ifndef HS_FRAMING_H
#define HS_FRAMING_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t linktype;
    uint32_t snaplen;
    uint64_t units;       /* timestamp units per second (if_tsresol) */
    int64_t offset_s;     /* if_tsoffset */
} Iface;

typedef void (*frame_fn)(void *ctx, uint32_t linktype, int64_t ts_ns, const uint8_t *data,
                         size_t caplen, uint32_t origlen);

enum { FMT_UNKNOWN = 0, FMT_PCAP = 1, FMT_PCAPNG = 2 };

typedef struct {
    int format;
    int swapped;          /* file byte order differs from ours */
    int header_done;
    uint32_t linktype;    /* classic pcap */
    uint32_t snaplen;
    uint64_t units;
    Iface *ifaces;        /* pcapng, current section */
    uint32_t n_ifaces, cap_ifaces;
    uint64_t offset;      /* file offset of the next unconsumed byte */
    uint64_t packets;     /* packet records framed so far */
    uint64_t first_linktype_set;
    uint64_t ts_clamped;  /* packets whose time was outside [TS_MIN, TS_MAX] (clamped) */
    uint64_t ts_clamped_first; /* the number of the first of them */
    char err[320];        /* set when framer_feed returns -1 */
    const int *stop;      /* if set, framing stops after a packet once *stop is non-zero */
} Framer;

/* A packet's time in the engine's range (engine.h, ts_clamp), counting a clamped one. */
int64_t framer_time(Framer *f, int64_t ts, uint64_t pkt_no);
void framer_init(Framer *f);
void framer_free(Framer *f);
/* Frames every complete record in buf and calls fn for each packet. Returns the number
 * of bytes consumed (the rest is an incomplete record: feed it again with more data),
 * or -1 with f->err set when the data is not a valid capture. */
long framer_feed(Framer *f, const uint8_t *buf, size_t len, frame_fn fn, void *ctx);
#endif
