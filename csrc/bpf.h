#ifndef HS_BPF_H
#define HS_BPF_H
#include <stddef.h>
#include <stdint.h>

/* A classic BPF program as libpcap's pcap_compile() makes it (struct bpf_insn): the
 * filter of `handshake read -f`, compiled in Python (analyzer.bpf) and run here on each
 * frame, before decoding. */
typedef struct {
    uint16_t code;
    uint8_t jt, jf;
    uint32_t k;
} BpfInsn;

/* 1 if the program is safe to run: known instructions, jumps forward inside it, scratch
 * memory indexes < 16, no division by a constant 0, and it ends with a return. */
int bpf_valid(const BpfInsn *prog, size_t n);
/* The program's return value for one frame (0: the frame does not match). A load past
 * the captured bytes rejects the frame, as libpcap's bpf_filter() does. */
uint32_t bpf_run(const BpfInsn *prog, const uint8_t *pkt, uint32_t wirelen, uint32_t buflen);
#endif
