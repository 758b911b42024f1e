#include "bf16_gemm.h"

#include "bf16.h"

#if BF16_GEMM_BUILT
#include <immintrin.h>

/* Blocking: a 12 x 32 tile of C lives in 24 registers while a block of KC values of k
 * streams through; B is packed NC columns at a time (KC x NC bf16 = 256 KiB, in L2),
 * A MC rows at a time. */
#define MR 12
#define NR 32
#define KC 256
#define NC 512
#define MC 96

/* dst[i] = the 16 bits of bf16_round(src[i]) (the loop vectorises) */
static void to_bf16(uint16_t *dst, const float *src, int n) {
    for (int i = 0; i < n; i++) {
        union { float f; uint32_t u; } v = {.f = bf16_round(src[i])};
        dst[i] = (uint16_t)(v.u >> 16);
    }
}

/* Packed buffers per thread (the caller's threads each run their own share): the B
 * block, the A block, and the bf16 copy either is packed from. */
static _Thread_local uint32_t packed_b[(KC / 2) * NC] __attribute__((aligned(64)));
static _Thread_local uint32_t packed_a[(KC / 2) * MC] __attribute__((aligned(64)));
static _Thread_local uint16_t staged[KC * NC] __attribute__((aligned(64)));

/* One operand's block as panels of R lanes: lane r of pair p holds X(r, k0 + 2p) in its
 * low half and X(r, k0 + 2p + 1) in its high half, the layout VDPBF16PS reads; X(r, k) is
 * src[(r0 + r) * ld + k] or, k-major, src[k * ld + r0 + r]. Lanes past n and the odd k past
 * kc are zero. The block is first rounded to bf16 row by row (contiguous, vectorised). */
static void pack(uint32_t *out, int R, int kmajor, const float *src, int ld, int r0, int n, int k0, int kc) {
    int kp = (kc + 1) / 2, n_pad = (n + R - 1) / R * R;
    if (!kmajor) {                                 /* staged[r][k], 2 kp values per row */
        for (int r = 0; r < n_pad; r++) {
            uint16_t *row = staged + (size_t)r * 2 * kp;
            if (r < n) to_bf16(row, src + (size_t)(r0 + r) * ld + k0, kc);
            for (int k = r < n ? kc : 0; k < 2 * kp; k++) row[k] = 0;
        }
        for (int rp = 0; rp < n_pad; rp += R)
            for (int p = 0; p < kp; p++)
                for (int r = 0; r < R; r++) {
                    const uint16_t *pr = staged + (size_t)(rp + r) * 2 * kp + 2 * p;
                    out[(size_t)rp * kp + (size_t)p * R + r] = pr[0] | (uint32_t)pr[1] << 16;
                }
    } else {                                       /* staged[k][r], n_pad values per row */
        for (int k = 0; k < 2 * kp; k++) {
            uint16_t *row = staged + (size_t)k * n_pad;
            if (k < kc) to_bf16(row, src + (size_t)(k0 + k) * ld + r0, n);
            for (int r = k < kc ? n : 0; r < n_pad; r++) row[r] = 0;
        }
        for (int rp = 0; rp < n_pad; rp += R)
            for (int p = 0; p < kp; p++) {
                const uint16_t *even = staged + (size_t)2 * p * n_pad + rp, *odd = even + n_pad;
                uint32_t *o = out + (size_t)rp * kp + (size_t)p * R;
                for (int r = 0; r < R; r++) o[r] = even[r] | (uint32_t)odd[r] << 16;
            }
    }
}

/* C tile (mr <= MR rows, nr <= NR columns) = alpha * a b + beta * C; beta == 0 never
 * reads C (it may hold anything, as BLAS allows). */
__attribute__((target("avx512f,avx512bf16")))
static void tile(int kp, const uint32_t *a, const uint32_t *b, float *C, int ldc, int mr, int nr,
                 float alpha, float beta) {
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int p = 0; p < kp; p++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(b + (size_t)p * NR);
        __m512bh b1 = (__m512bh)_mm512_load_si512(b + (size_t)p * NR + 16);
        const uint32_t *ap = a + (size_t)p * MR;
        #pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)ap[i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
    }
    __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr <= 16 ? 0 : nr >= 32 ? 0xFFFF : (__mmask16)((1u << (nr - 16)) - 1);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int i = 0; i < mr; i++) {
        float *c = C + (size_t)i * ldc;
        __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
        if (beta != 0.0f) {
            r0 = _mm512_add_ps(r0, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m0, c)));
            r1 = _mm512_add_ps(r1, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m1, c + 16)));
        }
        _mm512_mask_storeu_ps(c, m0, r0);
        _mm512_mask_storeu_ps(c + 16, m1, r1);
    }
}

void bf16_gemm(int transA, int transB, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {                                  /* C = beta C, as BLAS */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
        return;
    }
    for (int j0 = 0; j0 < N; j0 += NC) {
        int nc = N - j0 < NC ? N - j0 : NC;
        for (int k0 = 0; k0 < K; k0 += KC) {
            int kc = K - k0 < KC ? K - k0 : KC, kp = (kc + 1) / 2;
            float b_scale = k0 == 0 ? beta : 1.0f;  /* later k blocks add to C */
            pack(packed_b, NR, !transB, B, ldb, j0, nc, k0, kc);
            for (int i0 = 0; i0 < M; i0 += MC) {
                int mc = M - i0 < MC ? M - i0 : MC;
                pack(packed_a, MR, transA, A, lda, i0, mc, k0, kc);
                for (int jp = 0; jp < nc; jp += NR)
                    for (int ip = 0; ip < mc; ip += MR)
                        tile(kp, packed_a + (size_t)ip * kp, packed_b + (size_t)jp * kp,
                             C + (size_t)(i0 + ip) * ldc + j0 + jp, ldc, mc - ip < MR ? mc - ip : MR,
                             nc - jp < NR ? nc - jp : NR, alpha, b_scale);
            }
        }
    }
}

#else

void bf16_gemm(int transA, int transB, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    (void)transA; (void)transB; (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda;
    (void)B; (void)ldb; (void)beta; (void)C; (void)ldc;
}

#endif
