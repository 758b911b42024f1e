#include "kernels.h"

#include <math.h>
#include <string.h>
#include <omp.h>

#include "alloc.h"
#include "bf16.h"
#include "bf16_gemm.h"
#include "blas.h"
#include "cpu.h"
#include "parallel.h"

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

/* ---------------------------------------------------------------- matmul */

typedef void (*GemmFn)(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc);

/* One product on the training threads: `gemm` runs single-threaded on each thread's share
 * unless the product is small or (own_threads) the library threads it itself. */
static void split_product(GemmFn gemm, int own_threads, int transA, int transB, int M, int N, int K, float alpha,
                          const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    int nt = omp_get_max_threads();
    /* Split the larger output dimension; small products run on one thread. */
    double work = (double)M * N * K;
    if (nt <= 1 || work < 2e5 || own_threads) {
        gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int split_n = N >= M;
    int dim = split_n ? N : M;
    #pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        /* chunks aligned to 16 floats keep each share on whole cache lines */
        int chunk = ((dim + n - 1) / n + 15) / 16 * 16;
        int lo = t * chunk, hi = lo + chunk > dim ? dim : lo + chunk;
        if (lo < hi) {
            if (split_n) {
                const float *Bp = transB ? B + (size_t)lo * ldb : B + lo;
                gemm(transA, transB, M, hi - lo, K, alpha, A, lda, Bp, ldb, beta, C + lo, ldc);
            } else {
                const float *Ap = transA ? A + lo : A + (size_t)lo * lda;
                gemm(transA, transB, hi - lo, N, K, alpha, Ap, lda, B, ldb, beta, C + (size_t)lo * ldc, ldc);
            }
        }
    }
}

void matmul(int transA, int transB, int M, int N, int K, float alpha,
            const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    split_product(blas_sgemm, blas_threads_mode(), transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void matmul_bf16(int transA, int transB, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (bf16_native()) split_product(bf16_gemm, 0, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else matmul(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---------------------------------------------------------------- linear */

/* a bf16 kernel's output, rounded in place */
static void round_output(int bf16, float *x, size_t n) {
    if (bf16) bf16_round_copy(x, x, n);
}

void linear_forward(float *y, const float *x, const float *w, const float *b, int N, int IC, int OC, int bf16) {
    if (N <= 0) return;
    #pragma omp parallel for PAR_IF((size_t)N * OC)
    for (int i = 0; i < N; i++) memcpy(y + (size_t)i * OC, b, sizeof(float) * OC);
    (bf16 ? matmul_bf16 : matmul)(0, 0, N, OC, IC, 1.0f, x, IC, w, OC, 1.0f, y, OC);
    round_output(bf16, y, (size_t)N * OC);
}

void linear_backward_input(float *dx, const float *dy, const float *w, int N, int IC, int OC, int bf16) {
    if (N <= 0) return;
    (bf16 ? matmul_bf16 : matmul)(0, 1, N, IC, OC, 1.0f, dy, OC, w, OC, 0.0f, dx, IC);
    round_output(bf16, dx, (size_t)N * IC);
}

/* db (OC) += column sums of dy (N,OC), each rounded to bf16 first when bf16 is set */
static void bias_backward(float *db, const float *dy, int N, int OC, int bf16) {
    /* each thread owns a slice of columns, so no races */
    #pragma omp parallel for schedule(static) PAR_IF((size_t)N * OC)
    for (int o0 = 0; o0 < OC; o0 += 64) {
        int o1 = o0 + 64 < OC ? o0 + 64 : OC;
        float acc[64] = {0};
        for (int i = 0; i < N; i++) {
            const float *r = dy + (size_t)i * OC;
            for (int o = o0; o < o1; o++) acc[o - o0] += r[o];
        }
        for (int o = o0; o < o1; o++) db[o] += bf16 ? bf16_round(acc[o - o0]) : acc[o - o0];
    }
}

void linear_backward_weights(float *dw, float *db, const float *dy, const float *x, int N, int IC, int OC) {
    if (N <= 0) return;
    matmul(1, 0, IC, OC, N, 1.0f, x, IC, dy, OC, 1.0f, dw, OC);
    bias_backward(db, dy, N, OC, 0);
}

void linear_backward_weights_bf16(float *dw, float *db, float *scratch, const float *dy, const float *x,
                                  int N, int IC, int OC) {
    if (N <= 0) return;
    matmul_bf16(1, 0, IC, OC, N, 1.0f, x, IC, dy, OC, 0.0f, scratch, OC);
    add_rounded(dw, scratch, (size_t)IC * OC);
    bias_backward(db, dy, N, OC, 1);
}

/* ---------------------------------------------------------------- layernorm */

void layernorm_forward(float *out, float *mean, float *rstd, const float *x,
                       const float *w, const float *b, int N, int C, int bf16) {
    #pragma omp parallel for schedule(static) PAR_IF((size_t)N * C)
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * C;
        float *oi = out + (size_t)i * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++) m += xi[c];
        m /= C;
        float v = 0.0f;
        for (int c = 0; c < C; c++) { float d = xi[c] - m; v += d * d; }
        v /= C;
        float s = 1.0f / sqrtf(v + 1e-5f);
        for (int c = 0; c < C; c++) oi[c] = (xi[c] - m) * s * w[c] + b[c];
        mean[i] = m;
        rstd[i] = s;
    }
    round_output(bf16, out, (size_t)N * C);
}

void layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                        const float *w, const float *mean, const float *rstd, int N, int C) {
    #pragma omp parallel for schedule(static) PAR_IF((size_t)N * C)
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * C, *gi = dout + (size_t)i * C;
        float *dxi = dx + (size_t)i * C;
        float m = mean[i], s = rstd[i];
        float sum_g = 0.0f, sum_gn = 0.0f;
        for (int c = 0; c < C; c++) {
            float g = gi[c] * w[c];
            sum_g += g;
            sum_gn += g * (xi[c] - m) * s;
        }
        sum_g /= C;
        sum_gn /= C;
        for (int c = 0; c < C; c++) {
            float n = (xi[c] - m) * s;
            dxi[c] += (gi[c] * w[c] - sum_g - n * sum_gn) * s;
        }
    }
    #pragma omp parallel for schedule(static) PAR_IF((size_t)N * C)
    for (int c0 = 0; c0 < C; c0 += 64) {
        int c1 = c0 + 64 < C ? c0 + 64 : C;
        float aw[64] = {0}, ab[64] = {0};
        for (int i = 0; i < N; i++) {
            const float *xi = x + (size_t)i * C, *gi = dout + (size_t)i * C;
            float m = mean[i], s = rstd[i];
            for (int c = c0; c < c1; c++) {
                aw[c - c0] += gi[c] * (xi[c] - m) * s;
                ab[c - c0] += gi[c];
            }
        }
        for (int c = c0; c < c1; c++) { dw[c] += aw[c - c0]; db[c] += ab[c - c0]; }
    }
}

/* ---------------------------------------------------------------- GELU (tanh form) */

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

void gelu_forward(float *out, const float *x, size_t n, int bf16) {
    #pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        out[i] = 0.5f * v * (1.0f + tanh_approx(GELU_K * (v + 0.044715f * v * v * v)));
    }
    round_output(bf16, out, n);
}

void gelu_backward(float *dx, const float *x, const float *dout, size_t n, int bf16) {
    #pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float u = GELU_K * (v + 0.044715f * v * v * v);
        float t = tanh_approx(u);
        float du = GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
        dx[i] = dout[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
    }
    round_output(bf16, dx, n);
}

/* ---------------------------------------------------------------- dropout */

uint64_t dropout_site(uint64_t seed, uint64_t site) {
    return mix64(mix64(seed + 0x9E3779B97F4A7C15ULL) ^ (site * 0xD1B54A32D192ED03ULL + 1));
}

void dropout_rows(float *x, const RowMap *m, size_t r0, size_t r1, int D, uint64_t site_key, float p) {
    if (p <= 0.0f) return;
    float scale = 1.0f / (1.0f - p);
    #pragma omp parallel for schedule(static) PAR_IF((r1 - r0) * D)
    for (size_t r = r0; r < r1; r++) {
        float *x_r = x + (r - r0) * D;
        uint64_t base = (uint64_t)rows_cell(m, r) * D;
        for (int d = 0; d < D; d++)
            x_r[d] = dropout_keep(site_key, base + d, p) ? x_r[d] * scale : 0.0f;
    }
}

/* ---------------------------------------------------------------- attention */

/* eight partial sums: the loop vectorises without reassociating floats behind our back */
static inline float dotf(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Attention of one (example, head) in a pass [t0, t1) works on contiguous copies of that
 * example's rows: its keys are the unmasked positions of [0, t1) only, its queries those
 * of them at [t0, t1) whose output is computed, so masked cells cost nothing. The rows of
 * one example lie a whole position's rows apart, which defeats the hardware prefetcher:
 * the copies fetch ahead. */
#define PREFETCH_AHEAD 16

static inline void prefetch_row(const float *row, int n, int for_write) {
    for (int l = 0; l < n; l += 16) {
        if (for_write) __builtin_prefetch(row + l, 1);
        else __builtin_prefetch(row + l, 0);
    }
}

/* dst (n, hd) = the hd columns at src of the given rows (ld floats apart) */
static void gather_rows(float *dst, const float *src, size_t ld, const int32_t *rows, int n, int hd) {
    for (int i = 0; i < n; i++) {
        if (i + PREFETCH_AHEAD < n) prefetch_row(src + (size_t)rows[i + PREFETCH_AHEAD] * ld, hd, 0);
        memcpy(dst + (size_t)i * hd, src + (size_t)rows[i] * ld, sizeof(float) * hd);
    }
}

/* the hd columns at dst of the given rows = (add: +=) src (n, hd) */
static void scatter_rows(float *dst, size_t ld, const int32_t *rows, int n, const float *src, int hd, int add) {
    for (int i = 0; i < n; i++) {
        if (i + PREFETCH_AHEAD < n) prefetch_row(dst + (size_t)rows[i + PREFETCH_AHEAD] * ld, hd, 1);
        float *d = dst + (size_t)rows[i] * ld;
        const float *s = src + (size_t)i * hd;
        if (add) for (int k = 0; k < hd; k++) d[k] += s[k];
        else memcpy(d, s, sizeof(float) * hd);
    }
}

/* The cells one example's attention works on in a pass [t0, t1): its nk keys, the
 * unmasked positions of [0, t1) with a row, ascending, and its nq queries, the keys at
 * or after t0 that own a row in the query map. The arrays lie in the thread's scratch
 * (ATTN_CELL_ARRAYS of T int32 after its floats). */
typedef struct {
    int32_t *kpos, *krow;               /* each key's position, and its row in the key map */
    int32_t *qkey, *qpos, *qin, *qrow;  /* each query's index among the keys, position, row
                                         * in the key map and row in the query map */
    int nk, nq;
} AttnCells;

static AttnCells attn_cells_at(void *at, int T) {
    int32_t *p = at;
    return (AttnCells){p, p + T, p + 2 * T, p + 3 * T, p + 4 * T, p + 5 * T, 0, 0};
}

static void attention_cells(AttnCells *c, const RowMap *km, const RowMap *qm, const int64_t *mask_b, int b,
                            int t0, int t1) {
    c->nk = c->nq = 0;
    for (int s = 0; s < t1; s++) {
        /* a real token without a row comes after every query of its example */
        long k = mask_b[s] ? rows_of(km, b, s) : -1;
        if (k < 0) continue;
        c->kpos[c->nk] = s;
        c->krow[c->nk] = (int32_t)k;
        long q = s >= t0 ? rows_of(qm, b, s) : -1;
        if (q >= 0) {
            c->qkey[c->nq] = c->nk;
            c->qpos[c->nq] = s;
            c->qin[c->nq] = (int32_t)k;
            c->qrow[c->nq++] = (int32_t)q;
        }
        c->nk++;
    }
}

/* A masked query that owns a row in qm (the full map, or the input of a supervised
 * label) attends to nothing: its output, or in backward its query gradient, is zero in
 * the hd columns at col of its row in xm, and its log-sum-exp 0. */
static void zero_masked_queries(float *x, const RowMap *xm, size_t ld, size_t col, float *lse_bh,
                                const RowMap *qm, const int64_t *mask_b, int b, int t0, int t1, int hd) {
    for (int t = t0; t < t1; t++) {
        if (mask_b[t] || rows_of(qm, b, t) < 0) continue;
        memset(x + (size_t)rows_of(xm, b, t) * ld + col, 0, sizeof(float) * hd);
        if (lse_bh) lse_bh[t] = 0.0f;
    }
}

/* Products for a handful of query rows (a thought pass, a decoding step): plain loops,
 * since a BLAS call per (row, head) costs more than its arithmetic. Same contract as
 * blas_sgemm for the three forms attention uses. */
static void gemm_small(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc) {
    if (beta != 1.0f)
        for (int i = 0; i < M; i++) {
            float *c = C + (size_t)i * ldc;
            for (int j = 0; j < N; j++) c[j] = beta == 0.0f ? 0.0f : c[j] * beta;
        }
    if (!transA && transB) {          /* C = A B^T: dot products of rows */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] += alpha * dotf(A + (size_t)i * lda, B + (size_t)j * ldb, K);
    } else {                          /* C = A B or A^T B: rows of B weighted by A's entries */
        size_t a_row = transA ? 1 : (size_t)lda, a_col = transA ? (size_t)lda : 1;
        for (int i = 0; i < M; i++)
            for (int k = 0; k < K; k++) {
                float a = alpha * A[i * a_row + k * a_col];
                if (a == 0.0f) continue;
                const float *b = B + (size_t)k * ldb;
                float *c = C + (size_t)i * ldc;
                for (int j = 0; j < N; j++) c[j] += a * b[j];
            }
    }
}

/* bf16 rounding inside the attention threads' own loop (no nested parallel region) */
static void round_serial(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = bf16_round(x[i]);
}

static void attn_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc, int few_rows) {
    if (few_rows) gemm_small(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else blas_sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* P (nq, nk) from the scores S (in place): query i sees the keys up to its own
 * (qkey[i]); the rest of its row is zero (BLAS computed the whole block: faster than
 * skipping the upper triangle). lse (indexed by position) receives each row's
 * log-sum-exp (forward) or is read from it (recompute). With row_sum (bf16 forward):
 * P holds exp(s - row max) rounded to bf16 instead, and row_sum (nq) the fp32 sums that
 * normalise them. */
static void softmax_rows(float *S, float *lse, int recompute, float *row_sum, const AttnCells *c) {
    const int32_t *qpos = c->qpos;
    int nk = c->nk;
    for (int i = 0; i < c->nq; i++) {
        float *row = S + (size_t)i * nk;
        int v = c->qkey[i] + 1;
        float L;
        if (recompute) {
            L = lse[qpos[i]];
        } else {
            float mx = -INFINITY;
            for (int s = 0; s < v; s++) if (row[s] > mx) mx = row[s];
            float sum = 0.0f;
            for (int s = 0; s < v; s++) sum += exp_approx(row[s] - mx);
            L = mx + logf(sum);
            lse[qpos[i]] = L;
            if (row_sum) {
                row_sum[i] = sum;
                for (int s = 0; s < v; s++) row[s] = bf16_round(exp_approx(row[s] - mx));
                for (int s = v; s < nk; s++) row[s] = 0.0f;
                continue;
            }
        }
        for (int s = 0; s < v; s++) row[s] = exp_approx(row[s] - L);
        for (int s = v; s < nk; s++) row[s] = 0.0f;
    }
}

/* dst = P with attention dropout applied (mask scaled by 1/(1-p)); dst may equal P. The
 * mask is keyed by (b, h, query position, key position): independent of the layout. */
static void drop_probs(float *dst, const float *P, int b, int h, int NH, int T, const AttnCells *c,
                       uint64_t site_key, float p_drop) {
    float keep_scale = 1.0f / (1.0f - p_drop);
    int nk = c->nk;
    for (int i = 0; i < c->nq; i++) {
        uint64_t base = (((uint64_t)b * NH + h) * T + c->qpos[i]) * T;
        for (int s = 0; s < nk; s++) {
            float v = P[(size_t)i * nk + s];
            dst[(size_t)i * nk + s] = v != 0.0f && dropout_keep(site_key, base + c->kpos[s], p_drop) ? v * keep_scale : 0.0f;
        }
    }
}

void attention_forward(float *out, float *lse, float *scratch, const float *qkv, const RowMap *km,
                       const RowMap *qm, const int64_t *mask, int t0, int t1, int C, int NH, int n_threads,
                       uint64_t site_key, float p_drop, int bf16) {
    int B = km->B, T = km->T, hd = C / NH;
    float scale = 1.0f / sqrtf((float)hd);
    size_t ld3 = (size_t)3 * C;
    #pragma omp parallel num_threads(n_threads) \
        if (!blas_threads_mode() && (size_t)B * NH * (t1 - t0) * t1 * hd >= PAR_GRAIN)
    {
        float *S = scratch + (size_t)omp_get_thread_num() * attention_scratch_floats(T, hd, 0);
        float *row_sum = S + (size_t)T * T, *Qg = row_sum + T, *Kg = Qg + (size_t)T * hd;
        float *Vg = Kg + (size_t)T * hd, *Og = Vg + (size_t)T * hd;
        AttnCells cells = attn_cells_at(Og + (size_t)T * hd, T);
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                const int64_t *mb = mask + (size_t)b * T;
                float *lse_bh = lse + ((size_t)b * NH + h) * T;
                zero_masked_queries(out, qm, C, (size_t)h * hd, lse_bh, qm, mb, b, t0, t1, hd);
                attention_cells(&cells, km, qm, mb, b, t0, t1);
                int nq = cells.nq, nk = cells.nk, few = nq <= 4;
                if (nq == 0) continue;
                gather_rows(Qg, qkv + (size_t)h * hd, ld3, cells.qin, nq, hd);
                gather_rows(Kg, qkv + C + (size_t)h * hd, ld3, cells.krow, nk, hd);
                gather_rows(Vg, qkv + 2 * C + (size_t)h * hd, ld3, cells.krow, nk, hd);
                attn_gemm(0, 1, nq, nk, hd, scale, Qg, hd, Kg, hd, 0.0f, S, nk, few);
                softmax_rows(S, lse_bh, 0, bf16 ? row_sum : NULL, &cells);
                if (p_drop > 0.0f) drop_probs(S, S, b, h, NH, T, &cells, site_key, p_drop);
                attn_gemm(0, 0, nq, hd, nk, 1.0f, S, nk, Vg, hd, 0.0f, Og, hd, few);
                if (bf16)
                    for (int i = 0; i < nq; i++)
                        for (int d = 0; d < hd; d++) Og[(size_t)i * hd + d] /= row_sum[i];
                scatter_rows(out + (size_t)h * hd, C, cells.qrow, nq, Og, hd, 0);
            }
    }
    size_t q0 = rows_first(qm, t0), q1 = rows_first(qm, t1);
    round_output(bf16, out + q0 * C, (q1 - q0) * C);
}

void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *out, const float *lse, const RowMap *km, const RowMap *qm,
                        const int64_t *mask, int t0, int t1, int C, int NH, int n_threads, uint64_t site_key,
                        float p_drop, int bf16) {
    int B = km->B, T = km->T, hd = C / NH;
    float scale = 1.0f / sqrtf((float)hd);
    float keep_scale = p_drop > 0.0f ? 1.0f / (1.0f - p_drop) : 1.0f;
    float g_alpha = bf16 ? scale : 1.0f; /* where the score gradient takes its scale */
    size_t ld3 = (size_t)3 * C;
    /* dout holds the range's rows only */
    const float *dout_all = dout - rows_first(qm, t0) * C;
    /* one (b, h) pair per task: it alone writes the dQ, dK, dV columns of that head */
    #pragma omp parallel num_threads(n_threads) \
        if (!blas_threads_mode() && (size_t)B * NH * (t1 - t0) * t1 * hd >= PAR_GRAIN)
    {
        float *P = scratch + (size_t)omp_get_thread_num() * attention_scratch_floats(T, hd, 1);
        float *Pd = P + (size_t)T * T, *G = Pd + (size_t)T * T;
        float *Qg = G + (size_t)T * T, *Kg = Qg + (size_t)T * hd, *Vg = Kg + (size_t)T * hd;
        float *dOg = Vg + (size_t)T * hd, *Og = dOg + (size_t)T * hd, *dQ = Og + (size_t)T * hd;
        float *dK = dQ + (size_t)T * hd, *dV = dK + (size_t)T * hd;
        AttnCells cells = attn_cells_at(dV + (size_t)T * hd, T);
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                const int64_t *mb = mask + (size_t)b * T;
                size_t q_col = (size_t)h * hd, k_col = C + q_col, v_col = 2 * C + q_col;
                zero_masked_queries(dqkv, km, ld3, q_col, NULL, qm, mb, b, t0, t1, hd);
                attention_cells(&cells, km, qm, mb, b, t0, t1);
                int nq = cells.nq, nk = cells.nk, few = nq <= 4;
                if (nq == 0) continue;
                size_t n = (size_t)nq * nk;
                gather_rows(Qg, qkv + q_col, ld3, cells.qin, nq, hd);
                gather_rows(Kg, qkv + k_col, ld3, cells.krow, nk, hd);
                gather_rows(Vg, qkv + v_col, ld3, cells.krow, nk, hd);
                gather_rows(dOg, dout_all + q_col, C, cells.qrow, nq, hd);
                gather_rows(Og, out + q_col, C, cells.qrow, nq, hd);
                /* recompute the probabilities from the saved log-sum-exp */
                attn_gemm(0, 1, nq, nk, hd, scale, Qg, hd, Kg, hd, 0.0f, P, nk, few);
                softmax_rows(P, (float *)lse + ((size_t)b * NH + h) * T, 1, NULL, &cells);
                const float *Pused = P;
                if (p_drop > 0.0f) {
                    drop_probs(Pd, P, b, h, NH, T, &cells, site_key, p_drop);
                    Pused = Pd;
                }
                /* G = dO V^T: gradient of the (dropped) probabilities */
                attn_gemm(0, 1, nq, nk, hd, 1.0f, dOg, hd, Vg, hd, 0.0f, G, nk, few);
                for (int i = 0; i < nq; i++) {
                    float *g = G + (size_t)i * nk;
                    const float *p = P + (size_t)i * nk, *pu = Pused + (size_t)i * nk;
                    /* D = sum_s p_s dp_s = dO . O, with dp_s the gradient of the softmax output */
                    float D = dotf(dOg + (size_t)i * hd, Og + (size_t)i * hd, hd);
                    for (int s = 0; s < nk; s++) {
                        float dp = p_drop > 0.0f ? (pu[s] != 0.0f ? g[s] * keep_scale : 0.0f) : g[s];
                        g[s] = bf16 ? p[s] * (dp - D) : p[s] * (dp - D) * scale;
                    }
                }
                /* the fp32 probabilities were needed above; the products read them in bf16 */
                if (bf16) {
                    round_serial(G, n);
                    round_serial((float *)Pused, n);
                }
                attn_gemm(0, 0, nq, hd, nk, g_alpha, G, nk, Kg, hd, 0.0f, dQ, hd, few);
                attn_gemm(1, 0, nk, hd, nq, g_alpha, G, nk, Qg, hd, 0.0f, dK, hd, few);
                attn_gemm(1, 0, nk, hd, nq, 1.0f, Pused, nk, dOg, hd, 0.0f, dV, hd, few);
                scatter_rows(dqkv + q_col, ld3, cells.qin, nq, dQ, hd, 0);
                scatter_rows(dqkv + k_col, ld3, cells.krow, nk, dK, hd, 1);
                scatter_rows(dqkv + v_col, ld3, cells.krow, nk, dV, hd, 1);
            }
    }
    /* autocast adds each pass's bf16 key/value gradient into a bf16 tensor: rounding the
     * running sum of [0, t1) after every pass reproduces it (up to a double rounding) */
    round_output(bf16, dqkv, rows_first(km, t1) * ld3);
}

/* ---------------------------------------------------------------- small helpers */

void fill_zero(float *x, size_t n) {
    #pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) x[i] = 0.0f;
}

void add_inplace(float *y, const float *x, size_t n) {
    #pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void add_rounded(float *y, const float *x, size_t n) {
    #pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) y[i] += bf16_round(x[i]);
}

/* ---------------------------------------------------------------- LM head + loss */

/* max of x (n) ignoring NaN, in 16 lanes so that it vectorises (the order of a max does
 * not change its value) */
static float row_max(const float *x, int n) {
    float part[16];
    for (int k = 0; k < 16; k++) part[k] = -INFINITY;
    int v = 0;
    for (; v + 16 <= n; v += 16)
        for (int k = 0; k < 16; k++) part[k] = x[v + k] > part[k] ? x[v + k] : part[k];
    float mx = -INFINITY;
    for (int k = 0; k < 16; k++) mx = part[k] > mx ? part[k] : mx;
    for (; v < n; v++) mx = x[v] > mx ? x[v] : mx;
    return mx;
}

CoreStatus lm_head_xent(double *loss, float *dh, float *dwte, const float *h, const float *wte,
                        const int64_t *targets, int N, int C, int V, float scale, int bf16,
                        float *dwte_acc) {
    const int chunk = 256;
    float *dw = bf16 ? dwte_acc : dwte;
    if (bf16 && dwte) fill_zero(dwte_acc, (size_t)V * C);
    float *logits = core_malloc(sizeof(float) * (size_t)chunk * V);
    if (!logits) return CORE_OUT_OF_MEMORY;
    double total = 0.0;
    int bad = 0;
    for (int r0 = 0; r0 < N && !bad; r0 += chunk) {
        int n = N - r0 < chunk ? N - r0 : chunk;
        const float *hr = h + (size_t)r0 * C;
        (bf16 ? matmul_bf16 : matmul)(0, 1, n, V, C, 1.0f, hr, C, wte, C, 0.0f, logits, V);
        if (bf16) bf16_round_copy(logits, logits, (size_t)n * V);
        double part = 0.0;
        #pragma omp parallel for reduction(+:part, bad) schedule(static) PAR_IF((size_t)n * V)
        for (int i = 0; i < n; i++) {
            float *z = logits + (size_t)i * V;
            float mx = row_max(z, V);
            float zt = z[targets[r0 + i]];
            /* overwrite logits with exp(z - max), then with d loss / d logits */
            int v;
            for (v = 0; v < V; v++) z[v] = exp_approx(z[v] - mx);
            /* their sum in 16 lanes (vectorised), then the lanes and the tail in double */
            float acc[16] = {0};
            for (v = 0; v + 16 <= V; v += 16)
                for (int k = 0; k < 16; k++) acc[k] += z[v + k];
            double sum = 0.0;
            for (int k = 0; k < 16; k++) sum += acc[k];
            for (; v < V; v++) sum += z[v];
            double li = mx + log(sum) - zt;
            if (!isfinite(li) || !isfinite(mx)) { bad += 1; continue; }
            part += li;
            float norm = (float)(scale / sum);
            for (v = 0; v < V; v++) z[v] *= norm;
            z[targets[r0 + i]] -= scale;
        }
        total += part;
        if (bad) break;
        /* bf16: the gradient of bf16 logits is bf16, and so is dh, autocast's gradient at
         * the product's output (zero on entry, so rounding the sum rounds the product) */
        if (bf16) bf16_round_copy(logits, logits, (size_t)n * V);
        if (dh) {
            (bf16 ? matmul_bf16 : matmul)(0, 0, n, C, V, 1.0f, logits, V, wte, C, 1.0f, dh + (size_t)r0 * C, C);
            if (bf16) bf16_round_copy(dh + (size_t)r0 * C, dh + (size_t)r0 * C, (size_t)n * C);
        }
        if (dwte) (bf16 ? matmul_bf16 : matmul)(1, 0, V, C, n, 1.0f, logits, V, hr, C, 1.0f, dw, C);
    }
    if (bf16 && dwte && !bad) add_rounded(dwte, dwte_acc, (size_t)V * C);
    core_free(logits);
    *loss = total;
    return bad ? CORE_NOT_FINITE : CORE_OK;
}

void lm_head_logits(float *logits, size_t ld, float *scratch, const float *h, const float *wte,
                    int n, int C, int V, int bf16) {
    if (bf16) {
        bf16_round_copy(scratch, h, (size_t)n * C);
        h = scratch;
    }
    (bf16 ? matmul_bf16 : matmul)(0, 1, n, V, C, 1.0f, h, C, wte, C, 0.0f, logits, (int)ld);
    if (bf16)
        for (int i = 0; i < n; i++) bf16_round_copy(logits + i * ld, logits + i * ld, (size_t)V);
}

/* ---------------------------------------------------------------- benchmark */

CoreStatus matmul_seconds(int n, int reps, double *seconds) {
    size_t nn = (size_t)n * n;
    float *a = core_malloc(sizeof(float) * nn * 3);
    if (!a) return CORE_OUT_OF_MEMORY;
    for (size_t i = 0; i < nn * 3; i++) a[i] = (float)((i * 7919) % 1000) * 1e-3f;
    matmul(0, 0, n, n, n, 1.0f, a, n, a + nn, n, 0.0f, a + 2 * nn, n); /* warm-up */
    double t0 = omp_get_wtime();
    for (int r = 0; r < reps; r++) matmul(0, 0, n, n, n, 1.0f, a, n, a + nn, n, 0.0f, a + 2 * nn, n);
    *seconds = omp_get_wtime() - t0;
    core_free(a);
    return CORE_OK;
}
