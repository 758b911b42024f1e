#include "bf16.h"

#include "parallel.h"

void bf16_round_copy(float *dst, const float *src, size_t n) {
    #pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) dst[i] = bf16_round(src[i]);
}
