#ifndef HS_DECODE_H
#define HS_DECODE_H
#include "engine.h"

/* LINKTYPE_* values (https://www.tcpdump.org/linktypes.html). */
enum { LT_NULL = 0, LT_ETHERNET = 1, LT_RAW_12 = 12, LT_RAW_14 = 14, LT_RAW = 101,
       LT_LOOP = 108, LT_SLL = 113, LT_IPV4 = 228, LT_IPV6 = 229, LT_SLL2 = 276 };

/* decode_frame results. */
enum { DEC_TCP = 0, DEC_NOT_TCP, DEC_NOT_IP, DEC_FRAGMENT, DEC_SHORT, DEC_BAD_TCP,
       DEC_UNSUPPORTED_LINK, DEC__COUNT };

int link_supported(uint32_t linktype);
int decode_frame(uint32_t linktype, const uint8_t *frame, size_t caplen, Segment *out,
                 int verify_checksums);
#endif
