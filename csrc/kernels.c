#include "kernels.h"

#include <math.h>
#include <string.h>
#include <omp.h>

#include "alloc.h"
#include "approx.h"
#include "bf16.h"
#include "bf16_gemm.h"
#include "blas.h"
#include "cpu.h"
#include "parallel.h"

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

/* ---------------------------------------------------------------- GELU (erf form) */

/* torch.nn.GELU() (approximate="none"): 0.5 x (1 + erf(x / sqrt 2)), fp32 */
void gelu_erf_forward(float *out, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void gelu_erf_backward(float *dx, const float *x, const float *dout, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752f));
        float pdf = 0.3989422804014327f * expf(-0.5f * v * v);
        dx[i] = dout[i] * (cdf + v * pdf);
    }
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
