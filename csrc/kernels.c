#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include "blas.h"

/* exp(x) for float, written so the compiler vectorises the loops that call it (libm's
 * expf is an opaque call): 2^n * p(r) with x = n ln2 + r, |r| <= ln2/2, a degree-6
 * polynomial; about 2 ulp over the range softmax and GELU use. */
static inline float exp_approx(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = __builtin_roundf(x * 1.44269504088896341f);
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

void matmul(int transA, int transB, int M, int N, int K, float alpha,
            const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    int nt = omp_get_max_threads();
    /* Split the larger output dimension; small products run on one thread. */
    double work = (double)M * N * K;
    if (nt <= 1 || work < 2e5 || blas_threads_mode()) {
        blas_sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
                blas_sgemm(transA, transB, M, hi - lo, K, alpha, A, lda, Bp, ldb, beta, C + lo, ldc);
            } else {
                const float *Ap = transA ? A + lo : A + (size_t)lo * lda;
                blas_sgemm(transA, transB, hi - lo, N, K, alpha, Ap, lda, B, ldb, beta,
                           C + (size_t)lo * ldc, ldc);
            }
        }
    }
}

/* ---------------------------------------------------------------- linear */

void linear_forward(float *y, const float *x, const float *w, const float *b, int N, int IC, int OC) {
    if (N <= 0) return;
    #pragma omp parallel for
    for (int i = 0; i < N; i++) memcpy(y + (size_t)i * OC, b, sizeof(float) * OC);
    matmul(0, 0, N, OC, IC, 1.0f, x, IC, w, OC, 1.0f, y, OC);
}

void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int N, int IC, int OC) {
    if (N <= 0) return;
    if (dx) matmul(0, 1, N, IC, OC, 1.0f, dy, OC, w, OC, 1.0f, dx, IC);
    matmul(1, 0, IC, OC, N, 1.0f, x, IC, dy, OC, 1.0f, dw, OC);
    /* bias gradient: each thread owns a slice of columns, so no races */
    #pragma omp parallel for schedule(static)
    for (int o0 = 0; o0 < OC; o0 += 64) {
        int o1 = o0 + 64 < OC ? o0 + 64 : OC;
        float acc[64] = {0};
        for (int i = 0; i < N; i++) {
            const float *r = dy + (size_t)i * OC;
            for (int o = o0; o < o1; o++) acc[o - o0] += r[o];
        }
        for (int o = o0; o < o1; o++) db[o] += acc[o - o0];
    }
}

/* ---------------------------------------------------------------- layernorm */

void layernorm_forward(float *out, float *mean, float *rstd, const float *x,
                       const float *w, const float *b, int N, int C) {
    #pragma omp parallel for schedule(static)
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
}

void layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                        const float *w, const float *mean, const float *rstd, int N, int C) {
    #pragma omp parallel for schedule(static)
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
    #pragma omp parallel for schedule(static)
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

void gelu_forward(float *out, const float *x, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        out[i] = 0.5f * v * (1.0f + tanh_approx(GELU_K * (v + 0.044715f * v * v * v)));
    }
}

void gelu_backward(float *dx, const float *x, const float *dout, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float u = GELU_K * (v + 0.044715f * v * v * v);
        float t = tanh_approx(u);
        float du = GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
        dx[i] = dout[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
    }
}

/* ---------------------------------------------------------------- dropout */

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t dropout_site(uint64_t seed, uint64_t site) {
    return mix64(mix64(seed + 0x9E3779B97F4A7C15ULL) ^ (site * 0xD1B54A32D192ED03ULL + 1));
}

int dropout_keep(uint64_t site_key, uint64_t index, float p) {
    uint64_t h = mix64(site_key ^ mix64(index + 0x632BE59BD9B4E019ULL));
    float u = (float)(h >> 40) * (1.0f / 16777216.0f); /* 24 bits: uniform in [0,1) */
    return u >= p;
}

void dropout_rows(float *x, int t0, int t1, int B, int T, int D, uint64_t site_key, float p) {
    if (p <= 0.0f) return;
    float scale = 1.0f / (1.0f - p);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int t = t0; t < t1; t++)
        for (int b = 0; b < B; b++) {
            float *r = x + ((size_t)(t - t0) * B + b) * D;
            uint64_t base = ((uint64_t)b * T + t) * D;
            for (int d = 0; d < D; d++)
                r[d] = dropout_keep(site_key, base + d, p) ? r[d] * scale : 0.0f;
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

void attention_forward(float *out, float *lse, const float *qkv, const int64_t *mask,
                       int t0, int t1, int B, int T, int C, int NH,
                       uint64_t site_key, float p_drop) {
    int hd = C / NH;
    float scale = 1.0f / sqrtf((float)hd);
    float keep_scale = p_drop > 0.0f ? 1.0f / (1.0f - p_drop) : 1.0f;
    size_t row3 = (size_t)B * 3 * C; /* stride between positions in qkv */
    #pragma omp parallel
    {
        float *w = malloc(sizeof(float) * (T > 0 ? T : 1));
        #pragma omp for collapse(3) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int t = t0; t < t1; t++) {
                    float *o = out + ((size_t)t * B + b) * C + h * hd;
                    float *l = lse + ((size_t)b * NH + h) * T + t;
                    memset(o, 0, sizeof(float) * hd);
                    if (!mask[(size_t)b * T + t] || !w) { *l = 0.0f; continue; }
                    const float *q = qkv + t * row3 + (size_t)b * 3 * C + h * hd;
                    float mx = -INFINITY;
                    for (int s = 0; s <= t; s++) {
                        if (!mask[(size_t)b * T + s]) { w[s] = -INFINITY; continue; }
                        const float *k = qkv + s * row3 + (size_t)b * 3 * C + C + h * hd;
                        w[s] = dotf(q, k, hd) * scale;
                        if (w[s] > mx) mx = w[s];
                    }
                    float sum = 0.0f;
                    for (int s = 0; s <= t; s++) {
                        float e = w[s] == -INFINITY ? 0.0f : exp_approx(w[s] - mx);
                        w[s] = e;
                        sum += e;
                    }
                    float inv = 1.0f / sum;
                    *l = mx + logf(sum);
                    uint64_t base = (((uint64_t)b * NH + h) * T + t) * T;
                    for (int s = 0; s <= t; s++) {
                        if (w[s] == 0.0f) continue;
                        float pr = w[s] * inv;
                        if (p_drop > 0.0f)
                            pr = dropout_keep(site_key, base + s, p_drop) ? pr * keep_scale : 0.0f;
                        const float *v = qkv + s * row3 + (size_t)b * 3 * C + 2 * C + h * hd;
                        for (int i = 0; i < hd; i++) o[i] += pr * v[i];
                    }
                }
        free(w);
    }
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                        const float *lse, const int64_t *mask, int t0, int t1, int B, int T,
                        int C, int NH, uint64_t site_key, float p_drop) {
    int hd = C / NH;
    float scale = 1.0f / sqrtf((float)hd);
    float keep_scale = p_drop > 0.0f ? 1.0f / (1.0f - p_drop) : 1.0f;
    size_t row3 = (size_t)B * 3 * C;
    size_t row1 = (size_t)B * C;
    /* one (b, h) pair per task: it alone writes the dK, dV rows of that head */
    #pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            for (int t = t1 - 1; t >= t0; t--) {
                float *dq = dqkv + t * row3 + (size_t)b * 3 * C + h * hd;
                memset(dq, 0, sizeof(float) * hd);
                if (!mask[(size_t)b * T + t]) continue;
                const float *q = qkv + t * row3 + (size_t)b * 3 * C + h * hd;
                const float *dout_t = dout + (size_t)(t - t0) * row1 + (size_t)b * C + h * hd;
                const float *o = out + t * row1 + (size_t)b * C + h * hd;
                float L = lse[((size_t)b * NH + h) * T + t];
                float D = dotf(dout_t, o, hd);
                uint64_t base = (((uint64_t)b * NH + h) * T + t) * T;
                for (int s = 0; s <= t; s++) {
                    if (!mask[(size_t)b * T + s]) continue;
                    const float *k = qkv + s * row3 + (size_t)b * 3 * C + C + h * hd;
                    const float *v = k + C;
                    float *dk = dqkv + s * row3 + (size_t)b * 3 * C + C + h * hd;
                    float *dv = dk + C;
                    float pr = exp_approx(dotf(q, k, hd) * scale - L);
                    float m = 1.0f;
                    if (p_drop > 0.0f) m = dropout_keep(site_key, base + s, p_drop) ? keep_scale : 0.0f;
                    float dp = dotf(dout_t, v, hd) * m;
                    float ds = pr * (dp - D) * scale;
                    float pm = pr * m;
                    for (int i = 0; i < hd; i++) {
                        dq[i] += ds * k[i];
                        dk[i] += ds * q[i];
                        dv[i] += pm * dout_t[i];
                    }
                }
            }
        }
}

/* ---------------------------------------------------------------- small helpers */

void fill_zero(float *x, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = 0.0f;
}

void add_inplace(float *y, const float *x, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* ---------------------------------------------------------------- LM head + loss */

double lm_head_xent(float *dh, float *dwte, const float *h, const float *wte,
                    const int64_t *targets, int N, int C, int V, float scale) {
    const int chunk = 256;
    float *logits = malloc(sizeof(float) * (size_t)chunk * V);
    if (!logits) return NAN;
    double total = 0.0;
    int bad = 0;
    for (int r0 = 0; r0 < N && !bad; r0 += chunk) {
        int n = N - r0 < chunk ? N - r0 : chunk;
        const float *hr = h + (size_t)r0 * C;
        matmul(0, 1, n, V, C, 1.0f, hr, C, wte, C, 0.0f, logits, V);
        double part = 0.0;
        #pragma omp parallel for reduction(+:part, bad) schedule(static)
        for (int i = 0; i < n; i++) {
            float *z = logits + (size_t)i * V;
            float mx = -INFINITY;
            for (int v = 0; v < V; v++) mx = z[v] > mx ? z[v] : mx;
            float zt = z[targets[r0 + i]];
            /* overwrite logits with exp(z - max), then with d loss / d logits */
            float acc[16] = {0};
            int v = 0;
            for (; v + 16 <= V; v += 16)
                for (int k = 0; k < 16; k++) { float e = exp_approx(z[v + k] - mx); z[v + k] = e; acc[k] += e; }
            double sum = 0.0;
            for (int k = 0; k < 16; k++) sum += acc[k];
            for (; v < V; v++) { float e = exp_approx(z[v] - mx); z[v] = e; sum += e; }
            double li = mx + log(sum) - zt;
            if (!isfinite(li) || !isfinite(mx)) { bad += 1; continue; }
            part += li;
            float norm = (float)(scale / sum);
            for (v = 0; v < V; v++) z[v] *= norm;
            z[targets[r0 + i]] -= scale;
        }
        total += part;
        if (bad) break;
        if (dh) matmul(0, 0, n, C, V, 1.0f, logits, V, wte, C, 1.0f, dh + (size_t)r0 * C, C);
        if (dwte) matmul(1, 0, V, C, n, 1.0f, logits, V, hr, C, 1.0f, dwte, C);
    }
    free(logits);
    return bad ? NAN : total;
}
