/* exp and tanh for float that the compiler vectorises, for softmax, GELU and the loss. */
#ifndef COCONUT_APPROX_H
#define COCONUT_APPROX_H

#include <stdint.h>

/* exp(x) for float, written so the compiler vectorises the loops that call it (libm's
 * expf is an opaque call): 2^n * p(r) with x = n ln2 + r, |r| <= ln2/2, a degree-6
 * polynomial; about 2 ulp over the range softmax and GELU use. */
static inline float exp_approx(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* round to nearest by the 1.5 * 2^23 trick: no libm call, vectorisable */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.3888889e-3f;
    p = p * r + 8.3333337e-3f;
    p = p * r + 4.1666668e-2f;
    p = p * r + 1.6666667e-1f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { float f; int32_t i; } u = {.f = p};
    u.i += (int32_t)n << 23;
    return u.f;
}

/* tanh through exp: 1 - 2 / (e^{2u} + 1); absolute error ~1e-7, enough for GELU */
static inline float tanh_approx(float u) {
    return 1.0f - 2.0f / (exp_approx(2.0f * u) + 1.0f);
}

#endif
