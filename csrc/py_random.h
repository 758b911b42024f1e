/* CPython's `random.Random`, draw for draw: the Mersenne Twister seeded as
 * `Random(string)` seeds it, and the few methods the ProsQA generator calls (random(),
 * _randbelow, hence choice, shuffle, sample, randrange). The C generator must draw the
 * very numbers the Python one draws, so that either writes the same questions. */
#ifndef COCONUT_PY_RANDOM_H
#define COCONUT_PY_RANDOM_H

#include <stddef.h>
#include <stdint.h>

#define PY_RANDOM_N 624

typedef struct {
    uint32_t mt[PY_RANDOM_N];
    int index;
} PyRandom;

/* Seeding with a non-negative integer given as its big-endian bytes, as `Random(int)`
 * seeds (`Random(str)` seeds with int.from_bytes(s + sha512(s))); n >= 1. */
void py_random_seed_bytes(PyRandom *r, const unsigned char *bytes, size_t n);
uint32_t py_random_u32(PyRandom *r);
/* random(): 53 random bits in [0, 1). */
double py_random_double(PyRandom *r);
/* _randbelow(n) for n >= 1: getrandbits(n.bit_length()) until it is below n. */
uint32_t py_random_below(PyRandom *r, uint32_t n);

#endif
