/* Paired layer kernels: each *_forward sits next to its *_backward. Outputs first, then
 * inputs, then sizes. Backward kernels accumulate (+=) into parameter gradients. */
#ifndef COCONUT_KERNELS_H
#define COCONUT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "rows.h"
#include "status.h"

/* C (M,N) = alpha * op(A) op(B) + beta * C, row-major, split over the OpenMP threads
 * (each thread calls a single-threaded sgemm on its share of the output). */
void matmul(int transA, int transB, int M, int N, int K, float alpha,
            const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* The same product as a bf16 run's: through the native kernel (bf16_gemm.h) when
 * bf16_native(), else matmul, which is exact for operands already rounded to bf16. */
void matmul_bf16(int transA, int transB, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* bf16 (the bf16 flag of the kernels below): their output is a bf16 tensor in autocast,
 * so they round it to bf16 themselves, in place (bf16.h). */

/* y (N,OC) = x (N,IC) @ w (IC,OC) + b (OC); bf16: the product is matmul_bf16, y rounded */
void linear_forward(float *y, const float *x, const float *w, const float *b, int N, int IC, int OC, int bf16);
/* The backward of linear_forward in its two halves, which the thought schedule runs at
 * different times: dx (N,IC) = dy @ w^T per pass; dw (IC,OC) += x^T @ dy and
 * db (OC) += sum dy once over all rows (one large product instead of one per pass). */
void linear_backward_input(float *dx, const float *dy, const float *w, int N, int IC, int OC, int bf16);
void linear_backward_weights(float *dw, float *db, const float *dy, const float *x, int N, int IC, int OC);
/* The same under bf16: dw and db are bf16 product outputs in autocast, so x^T @ dy goes
 * into scratch (IC*OC floats) and sum dy is taken in fp32, each rounded to bf16 before
 * it is added into the fp32 gradients. */
void linear_backward_weights_bf16(float *dw, float *db, float *scratch, const float *dy, const float *x,
                                  int N, int IC, int OC);

/* y (n) += bf16_round(x (n)) */
void add_rounded(float *y, const float *x, size_t n);

/* bf16: out rounded (autocast casts it for the next product; ln_f's stays fp32) */
void layernorm_forward(float *out, float *mean, float *rstd, const float *x,
                       const float *w, const float *b, int N, int C, int bf16);
/* dx (N,C) += ..., dw, db (C) += ... */
void layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                        const float *w, const float *mean, const float *rstd, int N, int C);

/* bf16: out rounded (the next product's operand) */
void gelu_forward(float *out, const float *x, size_t n, int bf16);
/* dx = dout * gelu'(x) (overwrites); bf16: rounded */
void gelu_backward(float *dx, const float *x, const float *dout, size_t n, int bf16);

/* The exact (erf) GELU of torch.nn.GELU(), fp32 only (the thought projection's); the
 * backward overwrites dx = dout * gelu'(x) and may run in place (dx == dout) */
void gelu_erf_forward(float *out, const float *x, size_t n);
void gelu_erf_backward(float *dx, const float *x, const float *dout, size_t n);

/* Counter-based dropout masks: keep(seed, site, index) is a pure function, so masks
 * never depend on how the positions were split into passes. */
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t dropout_site(uint64_t seed, uint64_t site);

/* inline: it runs once per element of every dropped tensor */
static inline int dropout_keep(uint64_t site_key, uint64_t index, float p) {
    uint64_t h = mix64(site_key ^ mix64(index + 0x632BE59BD9B4E019ULL));
    float u = (float)(h >> 40) * (1.0f / 16777216.0f); /* 24 bits: uniform in [0,1) */
    return u >= p;
}

/* In place on the rows [r0, r1) of a tensor of D floats a row (x points at row r0):
 * x = keep ? x / (1-p) : 0, with the mask keyed by the batch-major element
 * ((b*T + t)*D + d) of each row's cell, so that it never depends on the row layout.
 * Used for forward and, identically, for backward. */
void dropout_rows(float *x, const RowMap *m, size_t r0, size_t r1, int D, uint64_t site_key, float p);

void fill_zero(float *x, size_t n);
void add_inplace(float *y, const float *x, size_t n);

/* Fused LM head and cross-entropy at the given rows of h (N,C) only, in chunks so that
 * no (N, V) logits tensor is held. targets (N). *loss receives the summed loss. Adds
 * scale * dloss/dh into dh and scale * dloss/dwte into dwte (both may be NULL for loss
 * only). CORE_NOT_FINITE if some row's loss is not finite: the chunks before it have
 * already added into dh and dwte. bf16: h and wte hold bf16 values, dh is zero on
 * entry; the logits, their gradient and dh are rounded to bf16 (the loss is fp32), and
 * dwte's product is summed over all chunks in dwte_acc (V*C floats) and rounded once,
 * as autocast's one product over all rows (on CORE_NOT_FINITE dwte receives none). */
CoreStatus lm_head_xent(double *loss, float *dh, float *dwte, const float *h, const float *wte,
                        const int64_t *targets, int N, int C, int V, float scale, int bf16,
                        float *dwte_acc);

/* logits (n, V), row i at logits + i*ld = h (n,C) @ wte^T. bf16: wte holds bf16 values,
 * h is rounded into scratch (n*C floats) and the logits are rounded to bf16. */
void lm_head_logits(float *logits, size_t ld, float *scratch, const float *h, const float *wte,
                    int n, int C, int V, int bf16);

/* Seconds for `reps` products of two n x n matrices through matmul (the threading of
 * training): the machine's sgemm rate, for benchmarks. */
CoreStatus matmul_seconds(int n, int reps, double *seconds);

#endif
