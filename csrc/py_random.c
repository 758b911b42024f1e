#include "py_random.h"

#define M 397
#define UPPER 0x80000000u
#define LOWER 0x7fffffffu

static void seed_one(PyRandom *r, uint32_t s) {
    r->mt[0] = s;
    for (uint32_t i = 1; i < PY_RANDOM_N; i++) r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + i;
    r->index = PY_RANDOM_N;
}

/* Word j of the integer, least significant first, as CPython splits it for the seed. */
static uint32_t key_word(const unsigned char *bytes, size_t n, size_t j) {
    uint32_t w = 0;
    for (size_t b = 4 * j; b < 4 * j + 4 && b < n; b++) w |= (uint32_t)bytes[n - 1 - b] << (8 * (b % 4));
    return w;
}

void py_random_seed_bytes(PyRandom *r, const unsigned char *bytes, size_t n) {
    while (n > 1 && bytes[0] == 0) bytes++, n--;   /* leading zero bytes add no word */
    size_t len = (n + 3) / 4;
    uint32_t *mt = r->mt;
    seed_one(r, 19650218u);
    size_t i = 1, j = 0;
    for (size_t k = PY_RANDOM_N > len ? PY_RANDOM_N : len; k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525u)) + key_word(bytes, n, j) + (uint32_t)j;
        i++, j++;
        if (i >= PY_RANDOM_N) mt[0] = mt[PY_RANDOM_N - 1], i = 1;
        if (j >= len) j = 0;
    }
    for (size_t k = PY_RANDOM_N - 1; k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= PY_RANDOM_N) mt[0] = mt[PY_RANDOM_N - 1], i = 1;
    }
    mt[0] = 0x80000000u;
}

static void refill(PyRandom *r) {
    static const uint32_t mag[2] = {0u, 0x9908b0dfu};
    uint32_t *mt = r->mt, y;
    int k = 0;
    for (; k < PY_RANDOM_N - M; k++) {
        y = (mt[k] & UPPER) | (mt[k + 1] & LOWER);
        mt[k] = mt[k + M] ^ (y >> 1) ^ mag[y & 1u];
    }
    for (; k < PY_RANDOM_N - 1; k++) {
        y = (mt[k] & UPPER) | (mt[k + 1] & LOWER);
        mt[k] = mt[k + (M - PY_RANDOM_N)] ^ (y >> 1) ^ mag[y & 1u];
    }
    y = (mt[PY_RANDOM_N - 1] & UPPER) | (mt[0] & LOWER);
    mt[PY_RANDOM_N - 1] = mt[M - 1] ^ (y >> 1) ^ mag[y & 1u];
    r->index = 0;
}

uint32_t py_random_u32(PyRandom *r) {
    if (r->index >= PY_RANDOM_N) refill(r);
    uint32_t y = r->mt[r->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

double py_random_double(PyRandom *r) {
    uint32_t a = py_random_u32(r) >> 5, b = py_random_u32(r) >> 6;
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

uint32_t py_random_below(PyRandom *r, uint32_t n) {
    if (n == 0) return 0;   /* (CPython would draw forever; no caller asks) */
    int bits = 0;
    for (uint32_t v = n; v; v >>= 1) bits++;
    uint32_t x;
    do x = py_random_u32(r) >> (32 - bits);
    while (x >= n);
    return x;
}
