/* The native bf16 product: C = alpha * op(A) op(B) + beta * C (row-major, as blas_sgemm)
 * with every operand rounded to bf16 (round to nearest even) and the products summed in
 * fp32 by the AVX512-BF16 instruction VDPBF16PS.
 *
 * It computes what the emulated path computes (bf16 operands, exact products, fp32
 * sums) in another order of the sums, at up to twice the fp32 rate. One difference:
 * VDPBF16PS treats subnormal bf16 inputs and results as zero. */
#ifndef COCONUT_BF16_GEMM_H
#define COCONUT_BF16_GEMM_H

/* Whether this build has the kernel (x86-64, GCC or clang); cpu.h's
 * bf16_gemm_available() adds whether the CPU and OS can run it. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BF16_GEMM_BUILT 1
#else
#define BF16_GEMM_BUILT 0
#endif

/* Single-threaded (the caller splits the work); only call when bf16_gemm_available(). */
void bf16_gemm(int transA, int transB, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

#endif
