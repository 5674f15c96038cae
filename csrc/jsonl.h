#ifndef HS_JSONL_H
#define HS_JSONL_H
#include "track.h"

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

extern const char *NAMES_STATE[], *NAMES_INPUT[], *NAMES_CS[], *NAMES_CK[], *NAMES_ANOMALY[];
int conn_json(const Tracker *t, const Conn *c, Buf *b);
#endif
