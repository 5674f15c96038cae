/* Classic BPF (McCanne & Jacobson 1993), the instruction set libpcap compiles filters to;
 * the semantics of libpcap's bpf_filter() and bpf_validate(). */
#include "bpf.h"

enum { LD = 0x00, LDX = 0x01, ST = 0x02, STX = 0x03, ALU = 0x04, JMP = 0x05, RET = 0x06,
       MISC = 0x07 };
enum { W = 0x00, H = 0x08, B = 0x10 };
enum { IMM = 0x00, ABS = 0x20, IND = 0x40, MEM = 0x60, LEN = 0x80, MSH = 0xa0 };
enum { ADD = 0x00, SUB = 0x10, MUL = 0x20, DIV = 0x30, OR = 0x40, AND = 0x50, LSH = 0x60,
       RSH = 0x70, NEG = 0x80, MOD = 0x90, XOR = 0xa0 };
enum { JA = 0x00, JEQ = 0x10, JGT = 0x20, JGE = 0x30, JSET = 0x40 };
enum { K = 0x00, X = 0x08, A = 0x10 };
enum { TAX = 0x00, TXA = 0x80 };
#define MEMWORDS 16

static int alu_op(uint16_t op) {
    return op == ADD || op == SUB || op == MUL || op == DIV || op == OR || op == AND ||
           op == LSH || op == RSH || op == NEG || op == MOD || op == XOR;
}

int bpf_valid(const BpfInsn *p, size_t n) {
    if (n == 0 || n > 4096) return 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t c = p[i].code;
        size_t left = n - i - 1; /* instructions after this one */
        switch (c & 0x07) {
        case LD:
            if (c == (LD | IMM) || c == (LD | W | LEN)) break;
            if (c == (LD | MEM)) { if (p[i].k >= MEMWORDS) return 0; break; }
            if ((c & 0xe0) != ABS && (c & 0xe0) != IND) return 0;
            if ((c & 0x18) != W && (c & 0x18) != H && (c & 0x18) != B) return 0;
            break;
        case LDX:
            if (c == (LDX | IMM) || c == (LDX | W | LEN) || c == (LDX | MSH | B)) break;
            if (c == (LDX | MEM)) { if (p[i].k >= MEMWORDS) return 0; break; }
            return 0;
        case ST: case STX:
            if (c != ST && c != STX) return 0;
            if (p[i].k >= MEMWORDS) return 0;
            break;
        case ALU:
            if (!alu_op(c & 0xf0) || c > 0xff) return 0;
            if (((c & 0xf0) == DIV || (c & 0xf0) == MOD) && !(c & X) && p[i].k == 0) return 0;
            break;
        case JMP: /* a target i + 1 + offset must be inside the program */
            if ((c & 0xf0) == JA) {
                if (c != (JMP | JA) || p[i].k >= left) return 0;
            } else {
                uint16_t op = c & 0xf0;
                if (op != JEQ && op != JGT && op != JGE && op != JSET) return 0;
                if (c > 0xff || p[i].jt >= left || p[i].jf >= left) return 0;
            }
            break;
        case RET:
            if (c != (RET | K) && c != (RET | A)) return 0;
            break;
        case MISC:
            if (c != (MISC | TAX) && c != (MISC | TXA)) return 0;
            break;
        }
    }
    return (p[n - 1].code & 0x07) == RET;
}

static uint32_t be32(const uint8_t *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

uint32_t bpf_run(const BpfInsn *pc, const uint8_t *p, uint32_t wirelen, uint32_t buflen) {
    uint32_t a = 0, x = 0, k, mem[MEMWORDS] = {0};
    for (;; pc++) {
        uint16_t c = pc->code;
        switch (c) {
        case RET | K: return pc->k;
        case RET | A: return a;
        case LD | W | ABS: case LD | H | ABS: case LD | B | ABS:
        case LD | W | IND: case LD | H | IND: case LD | B | IND: {
            uint32_t size = (c & 0x18) == W ? 4 : (c & 0x18) == H ? 2 : 1;
            k = pc->k;
            if ((c & 0xe0) == IND) {
                if (x > UINT32_MAX - k) return 0;
                k += x;
            }
            if (k > buflen || size > buflen - k) return 0;
            a = size == 4 ? be32(p + k) : size == 2 ? (uint32_t)(p[k] << 8 | p[k + 1]) : p[k];
            continue;
        }
        case LD | W | LEN: a = wirelen; continue;
        case LDX | W | LEN: x = wirelen; continue;
        case LD | IMM: a = pc->k; continue;
        case LDX | IMM: x = pc->k; continue;
        case LD | MEM: a = mem[pc->k]; continue;
        case LDX | MEM: x = mem[pc->k]; continue;
        case LDX | MSH | B:
            if (pc->k >= buflen) return 0;
            x = (uint32_t)(p[pc->k] & 0xf) << 2;
            continue;
        case ST: mem[pc->k] = a; continue;
        case STX: mem[pc->k] = x; continue;
        case JMP | JA: pc += pc->k; continue;
        case MISC | TAX: x = a; continue;
        case MISC | TXA: a = x; continue;
        case ALU | NEG: a = 0u - a; continue;
        default: break;
        }
        if ((c & 0x07) == JMP) {
            uint32_t v = (c & X) ? x : pc->k;
            int yes;
            switch (c & 0xf0) {
            case JEQ: yes = a == v; break;
            case JGT: yes = a > v; break;
            case JGE: yes = a >= v; break;
            case JSET: yes = (a & v) != 0; break;
            default: return 0;
            }
            pc += yes ? pc->jt : pc->jf;
            continue;
        }
        if ((c & 0x07) == ALU) {
            uint32_t v = (c & X) ? x : pc->k;
            switch (c & 0xf0) {
            case ADD: a += v; break;
            case SUB: a -= v; break;
            case MUL: a *= v; break;
            case DIV: if (!v) return 0; a /= v; break;
            case MOD: if (!v) return 0; a %= v; break;
            case OR: a |= v; break;
            case AND: a &= v; break;
            case XOR: a ^= v; break;
            case LSH: a = v < 32 ? a << v : 0; break;
            case RSH: a = v < 32 ? a >> v : 0; break;
            default: return 0;
            }
            continue;
        }
        return 0; /* bpf_valid() lets nothing else through */
    }
}
