/* bfloat16 mixed precision (the reference's `bf16: true`, torch.autocast on CPU) without
 * bf16 hardware: a bf16 value is kept in a float whose low 16 bits are zero.
 *
 * Two such values have 8-bit significands, so their product is exact in float32: an fp32
 * sgemm over operands rounded to bf16 computes exactly the products of a bf16 GEMM and
 * sums them in fp32, i.e. the numerics of a bf16 GEMM with fp32 accumulation (up to the
 * order of the sums), at fp32 speed plus the cost of rounding. That is the emulated path.
 * On a CPU with AVX512-BF16 the linear layers' and the LM head's products run on the
 * native kernel instead (bf16_gemm.h; neither scipy-openblas32 nor Debian's OpenBLAS
 * exports sbgemm); attention's per-head products stay emulated. cpu.h chooses the kernel
 * and names the path for the logs. */
#ifndef COCONUT_BF16_H
#define COCONUT_BF16_H

#include <stddef.h>
#include <stdint.h>

/* Round to nearest, ties to even, as torch's float -> bfloat16 conversion: NaN becomes
 * the quiet NaN 0x7FC0 (truncating could turn a NaN into an infinity), overflow
 * rounds to infinity, subnormals round like any other value. */
static inline float bf16_round(float x) {
    union { float f; uint32_t u; } v = {.f = x};
    if ((v.u & 0x7FFFFFFFu) > 0x7F800000u) v.u = 0x7FC00000u;
    else v.u = (v.u + 0x7FFFu + ((v.u >> 16) & 1u)) & 0xFFFF0000u;
    return v.f;
}

/* x[i] = bf16_round(x[i]) (in parallel for large n); dst may equal src. */
void bf16_round_copy(float *dst, const float *src, size_t n);

#endif
