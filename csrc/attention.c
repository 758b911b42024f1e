/* Causal self-attention with the key/value cache, forward and backward, per (example,
 * head) on the threads' scratch slots. */
#include "attention.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "approx.h"
#include "bf16.h"
#include "blas.h"
#include "kernels.h"
#include "parallel.h"

/* Eight lanes of floats as GCC's vector extension: the loops below keep their sums in
 * registers in the order the scalar code would (-ffp-contract=off: a product, then a
 * sum), so the values are the plain loops' bit for bit, at vector speed. */
typedef float f8 __attribute__((vector_size(32)));

static inline f8 load8(const float *p) {
    f8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store8(float *p, f8 v) { memcpy(p, &v, sizeof v); }

/* eight partial sums (lane k takes elements k, k+8, ...), added in a fixed tree */
static inline float dotf(const float *a, const float *b, int n) {
    f8 acc = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8) acc += load8(a + i) * load8(b + i);
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
 * or after t0 that own a row in the query map. The arrays lie in the thread's scratch slot
 * (attn_slot). */
typedef struct {
    int32_t *kpos, *krow;               /* each key's position, and its row in the key map */
    int32_t *qkey, *qpos, *qin, *qrow;  /* each query's index among the keys, position, row
                                         * in the key map and row in the query map */
    int nk, nq;
} AttnCells;

/* One thread's slot of the attention scratch: the work arrays of one (example, head). */
typedef struct {
    float *S;                   /* (T, T) the scores, then the probabilities */
    float *Pd, *G;              /* backward (T, T): the dropped probabilities, their gradient */
    float *row_sum;             /* forward (T): bf16's fp32 row sums */
    float *Q, *K, *V, *O;       /* (T, hd) copies of the head's rows */
    float *dO, *dQ, *dK, *dV;   /* backward (T, hd) */
    AttnCells cells;
} AttnSlot;

/* n floats at offset *off of base (NULL while only counting) */
static float *take(float *base, size_t *off, size_t n) {
    float *p = base ? base + *off : NULL;
    *off += n;
    return p;
}

/* The one statement of a slot's layout: carves it at base (NULL: only counts) and
 * returns its floats, which attention_scratch_floats reports to the arena. */
static size_t attn_slot(AttnSlot *s, float *base, int T, int hd, int backward) {
    size_t off = 0, tt = (size_t)T * T, th = (size_t)T * hd;
    *s = (AttnSlot){0};
    s->S = take(base, &off, tt);
    if (backward) {
        s->Pd = take(base, &off, tt);
        s->G = take(base, &off, tt);
    } else {
        s->row_sum = take(base, &off, (size_t)T);
    }
    s->Q = take(base, &off, th);
    s->K = take(base, &off, th);
    s->V = take(base, &off, th);
    s->O = take(base, &off, th);
    if (backward) {
        s->dO = take(base, &off, th);
        s->dQ = take(base, &off, th);
        s->dK = take(base, &off, th);
        s->dV = take(base, &off, th);
    }
    /* the cells' six index arrays, int32: the size of a float */
    int32_t *c = (int32_t *)take(base, &off, (size_t)6 * T);
    if (c) s->cells = (AttnCells){c, c + T, c + 2 * T, c + 3 * T, c + 4 * T, c + 5 * T, 0, 0};
    return off;
}

size_t attention_scratch_floats(int T, int hd, int backward) {
    AttnSlot s;
    return attn_slot(&s, NULL, T, hd, backward);
}

/* The calling thread's slot of scratch. */
static AttnSlot thread_slot(float *scratch, int T, int hd, int backward) {
    AttnSlot s;
    size_t n = attention_scratch_floats(T, hd, backward);
    attn_slot(&s, scratch + (size_t)omp_get_thread_num() * n, T, hd, backward);
    return s;
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
        for (int i = 0; i < M; i++) {
            const float *ai = A + i * a_row;
            float *c = C + (size_t)i * ldc;
            /* 16 columns of the row at a time, summed over k in registers: storing c
             * after every k would chain each sum on the store before it */
            int j = 0;
            for (; j + 16 <= N; j += 16) {
                f8 c0 = load8(c + j), c1 = load8(c + j + 8);
                for (int k = 0; k < K; k++) {
                    float a = alpha * ai[k * a_col];
                    if (a == 0.0f) continue;
                    const float *b = B + (size_t)k * ldb + j;
                    c0 += a * load8(b);
                    c1 += a * load8(b + 8);
                }
                store8(c + j, c0);
                store8(c + j + 8, c1);
            }
            for (; j < N; j++) {
                float cj = c[j];
                for (int k = 0; k < K; k++) {
                    float a = alpha * ai[k * a_col];
                    if (a != 0.0f) cj += a * B[(size_t)k * ldb + j];
                }
                c[j] = cj;
            }
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
        AttnSlot w = thread_slot(scratch, T, hd, 0);
        float *S = w.S, *row_sum = w.row_sum, *Qg = w.Q, *Kg = w.K, *Vg = w.V, *Og = w.O;
        AttnCells cells = w.cells;
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
    if (bf16) bf16_round_copy(out + q0 * C, out + q0 * C, (q1 - q0) * C);
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
        AttnSlot w = thread_slot(scratch, T, hd, 1);
        float *P = w.S, *Pd = w.Pd, *G = w.G, *Qg = w.Q, *Kg = w.K, *Vg = w.V, *Og = w.O;
        float *dOg = w.dO, *dQ = w.dQ, *dK = w.dK, *dV = w.dV;
        AttnCells cells = w.cells;
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
    if (bf16) bf16_round_copy(dqkv, dqkv, rows_first(km, t1) * ld3);
}
