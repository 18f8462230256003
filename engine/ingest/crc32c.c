/*
 * crc32c.c -- CRC-32C (Castagnoli), the checksum of journal records.
 *
 * The SSE 4.2 instruction when the CPU has it (8 bytes per instruction), otherwise a
 * slicing-by-8 table walk. CRC-32C rather than zlib's CRC-32 because it has hardware support on
 * x86 and ARMv8 and better error detection for short records; rather than a 64-bit hash because
 * a record's checksum only has to catch torn writes and flipped bits, not adversaries.
 */
#include "../engine_int.h"

#include <pthread.h>
#include <string.h>

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

static uint32_t crc_sw(uint32_t c, const unsigned char *p, size_t n) {
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= c;
        c = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
            table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
            table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
    return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const unsigned char *p,
                                                         size_t n) {
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c64 = __builtin_ia32_crc32di(c64, w);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--)
        c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
#endif

uint32_t eng_crc32c(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = data;
#if defined(__x86_64__)
    static _Atomic int hw = -1; /* racing first calls store the same value */
    int h = atomic_load_explicit(&hw, memory_order_relaxed);
    if (h < 0) {
        h = __builtin_cpu_supports("sse4.2") ? 1 : 0;
        atomic_store_explicit(&hw, h, memory_order_relaxed);
    }
    if (h)
        return ~crc_hw(~crc, p, n);
#endif
    pthread_once(&table_once, table_init);
    return ~crc_sw(~crc, p, n);
}
