#ifndef HS_ZEEK_H
#define HS_ZEEK_H
#include "engine.h"
#include "track.h"

/* Zeek's rules, re-implemented from its TCP analyzer (TCPSessionAdapter.cc, TCP.cc,
 * TCP_Endpoint.cc) and scripts/base/protocols/conn/main.zeek. */
void zeek_new_conn(Tracker *t, Conn *c, int from, const Segment *s);
int zeek_expired(const Tracker *t, Conn *c, int64_t ts);
int zeek_is_reuse(const Conn *c, const Segment *s);
void zeek_restart(const Tracker *t, Conn *c, const Segment *s);
void zeek_bad_checksum(Conn *c, int from);
void zeek_process(Tracker *t, Conn *c, int from, const Segment *s);
int zeek_conn_state(const Conn *c);
uint64_t zeek_size(const Side *e, const Side *peer);
void hist_push(Conn *c, char ch);
#endif
