#include "thoughts.h"

#include <math.h>
#include <string.h>

#include "alloc.h"
#include "bf16.h"
#include "kernels.h"
#include "parallel.h"

/* The soft thoughts [k0, k1) that lie in the positions [t0, t1) (numbered time-major). */
static void soft_range(const SoftThoughts *s, int t0, int t1, int *k0, int *k1) {
    int k = 0;
    while (k < s->n && s->cell[2 * k + 1] < t0) k++;
    *k0 = k;
    while (k < s->n && s->cell[2 * k + 1] < t1) k++;
    *k1 = k;
}

/* The ln_f row soft thought k reads: the position before it. */
static size_t soft_source_row(const Batch *bt, const SoftThoughts *s, int k) {
    return (size_t)rows_of(&bt->out_rows, s->cell[2 * k], s->cell[2 * k + 1] - 1);
}

/* Soft thoughts of a pass, before it: h = the ln_f output of the position before each,
 * probs = softmax(h @ wte^T / tau), mix = probs @ wte. */
static void soft_forward(Ctx *c, const Batch *bt, const SoftThoughts *s, int t0, int t1) {
    int C = c->shape->n_embd, V = c->shape->vocab_size, k0, k1;
    soft_range(s, t0, t1, &k0, &k1);
    int m = k1 - k0;
    if (m == 0) return;
    float *h = s->h + (size_t)k0 * C, *P = s->probs + (size_t)k0 * V;
    for (int k = k0; k < k1; k++)
        memcpy(s->h + (size_t)k * C, c->a->lnf + soft_source_row(bt, s, k) * C, sizeof(float) * C);
    matmul(0, 1, m, V, C, 1.0f, h, C, c->p.wte, C, 0.0f, P, V);
    float tau = s->tau;
    #pragma omp parallel for schedule(static) PAR_IF((size_t)m * V)
    for (int k = 0; k < m; k++) {
        float *z = P + (size_t)k * V, mx = -INFINITY;
        for (int v = 0; v < V; v++) {
            z[v] /= tau;
            mx = z[v] > mx ? z[v] : mx;
        }
        double sum = 0.0;
        for (int v = 0; v < V; v++) sum += z[v] = expf(z[v] - mx);
        float inv = (float)(1.0 / sum);
        for (int v = 0; v < V; v++) z[v] *= inv;
    }
    matmul(0, 0, m, C, V, 1.0f, P, V, c->p.wte, C, 0.0f, s->mix + (size_t)k0 * C, C);
}

/* Soft thoughts of a pass, after its backward filled dmix: the gradients of the mixture
 * and of the logits into wte, and of h into the ln_f gradient of the positions before
 * (earlier passes, whose backward comes later). */
static void soft_backward(Ctx *c, const Batch *bt, const SoftThoughts *s, int t0, int t1) {
    int C = c->shape->n_embd, V = c->shape->vocab_size, k0, k1;
    soft_range(s, t0, t1, &k0, &k1);
    int m = k1 - k0;
    if (m == 0) return;
    const float *P = s->probs + (size_t)k0 * V, *h = s->h + (size_t)k0 * C;
    float *dmix = s->dmix + (size_t)k0 * C, *dz = s->dz + (size_t)k0 * V;
    matmul(0, 1, m, V, C, 1.0f, dmix, C, c->p.wte, C, 0.0f, dz, V);           /* d probs */
    matmul(1, 0, V, C, m, 1.0f, P, V, dmix, C, 1.0f, c->g.wte, C);            /* mix = P wte */
    float inv_tau = 1.0f / s->tau;
    #pragma omp parallel for schedule(static) PAR_IF((size_t)m * V)
    for (int k = 0; k < m; k++) {   /* softmax: dz = P (dP - <P, dP>) / tau */
        const float *p = P + (size_t)k * V;
        float *g = dz + (size_t)k * V;
        double dot = 0.0;
        for (int v = 0; v < V; v++) dot += (double)p[v] * g[v];
        float d = (float)dot;
        for (int v = 0; v < V; v++) g[v] = p[v] * (g[v] - d) * inv_tau;
    }
    matmul(1, 0, V, C, m, 1.0f, dz, V, h, C, 1.0f, c->g.wte, C);              /* logits = h wte^T */
    matmul(0, 0, m, C, V, 1.0f, dz, V, c->p.wte, C, 0.0f, dmix, C);           /* d h, over dmix */
    for (int k = k0; k < k1; k++) {
        float *dst = c->a->dlnf + soft_source_row(bt, s, k) * C;
        const float *src = s->dmix + (size_t)k * C;
        for (int j = 0; j < C; j++) dst[j] += src[j];
    }
}

/* Projected continuous thoughts of a pass, before it (CODI's projection, zhenyi4/codi
 * src/model.py: nn.Sequential(Dropout(prj_dropout), Linear(dim, prj_dim), GELU(),
 * Linear(prj_dim, dim), LayerNorm(dim)) applied to hidden_states[-1] of the position
 * before the slot, i.e. the ln_f output; its scripts set prj_dropout 0, and so this
 * has no dropout): h = that ln_f output, pre = h W1^T + b1, act = gelu_erf(pre),
 * y = act W2^T + b2, mix = LayerNorm(y). */
static void proj_forward(Ctx *c, const Batch *bt, const SoftThoughts *s, int t0, int t1) {
    int C = c->shape->n_embd, H = s->H, k0, k1;
    soft_range(s, t0, t1, &k0, &k1);
    int m = k1 - k0;
    if (m == 0) return;
    const ParamPtrs *w = &c->p;
    float *h = s->h + (size_t)k0 * C, *pre = s->pre + (size_t)k0 * H, *act = s->act + (size_t)k0 * H;
    float *y = s->y + (size_t)k0 * C;
    for (int k = k0; k < k1; k++)
        memcpy(s->h + (size_t)k * C, c->a->lnf + soft_source_row(bt, s, k) * C, sizeof(float) * C);
    for (int k = 0; k < m; k++) memcpy(pre + (size_t)k * H, w->prj_fc1_b, sizeof(float) * H);
    matmul(0, 1, m, H, C, 1.0f, h, C, w->prj_fc1_w, C, 1.0f, pre, H);
    gelu_erf_forward(act, pre, (size_t)m * H);
    for (int k = 0; k < m; k++) memcpy(y + (size_t)k * C, w->prj_fc2_b, sizeof(float) * C);
    matmul(0, 1, m, C, H, 1.0f, act, H, w->prj_fc2_w, H, 1.0f, y, C);
    layernorm_forward(s->mix + (size_t)k0 * C, s->stats + k0, s->stats + s->n + k0, y, w->prj_ln_w, w->prj_ln_b,
                      m, C, 0);
}

/* db (n) += the column sums of dy (m, n) */
static void add_column_sums(float *db, const float *dy, int m, int n) {
    for (int k = 0; k < m; k++)
        for (int j = 0; j < n; j++) db[j] += dy[(size_t)k * n + j];
}

/* Projected thoughts of a pass, after its backward filled dmix: the projection's
 * gradients, and h's into the ln_f gradient of the positions before (earlier passes). */
static void proj_backward(Ctx *c, const Batch *bt, const SoftThoughts *s, int t0, int t1) {
    int C = c->shape->n_embd, H = s->H, k0, k1;
    soft_range(s, t0, t1, &k0, &k1);
    int m = k1 - k0;
    if (m == 0) return;
    const ParamPtrs *w = &c->p, *g = &c->g;
    const float *h = s->h + (size_t)k0 * C, *pre = s->pre + (size_t)k0 * H, *act = s->act + (size_t)k0 * H;
    float *dy = s->dy + (size_t)k0 * C, *dact = s->dact + (size_t)k0 * H;
    fill_zero(dy, (size_t)m * C);
    layernorm_backward(dy, g->prj_ln_w, g->prj_ln_b, s->dmix + (size_t)k0 * C, s->y + (size_t)k0 * C, w->prj_ln_w,
                       s->stats + k0, s->stats + s->n + k0, m, C);
    matmul(1, 0, C, H, m, 1.0f, dy, C, act, H, 1.0f, g->prj_fc2_w, H);
    add_column_sums(g->prj_fc2_b, dy, m, C);
    matmul(0, 0, m, H, C, 1.0f, dy, C, w->prj_fc2_w, H, 0.0f, dact, H);
    gelu_erf_backward(dact, pre, dact, (size_t)m * H);
    matmul(1, 0, H, C, m, 1.0f, dact, H, h, C, 1.0f, g->prj_fc1_w, C);
    add_column_sums(g->prj_fc1_b, dact, m, H);
    matmul(0, 0, m, C, H, 1.0f, dact, H, w->prj_fc1_w, C, 0.0f, dy, C);      /* d h, over dy */
    for (int k = k0; k < k1; k++) {
        float *dst = c->a->dlnf + soft_source_row(bt, s, k) * C;
        const float *src = s->dy + (size_t)k * C;
        for (int j = 0; j < C; j++) dst[j] += src[j];
    }
}

/* A pass's mask (Jacobi) and soft or projected thoughts, before it runs forward or backward. */
static void pass_forward(Ctx *c, const Batch *bt, const RowPlan *p, int i) {
    int t0 = p->bounds[i], t1 = p->bounds[i + 1];
    /* the mask is the plan's or the decoding batch's own memory (thoughts.h) */
    plan_set_live(p, (int64_t *)bt->mask, bt->B, bt->T, t0);
    if (p->soft.n) (p->soft.projected ? proj_forward : soft_forward)(c, bt, &p->soft, t0, t1);
    forward_range(c, bt, t0, t1);
}

void forward_passes(Ctx *c, const Batch *bt, const RowPlan *p) {
    for (int i = 0; i < p->n_pass; i++) pass_forward(c, bt, p, i);
}

/* The loss's terms: positions whose next label is supervised. */
static long count_supervised(const Batch *bt) {
    long N = 0;
    for (int b = 0; b < bt->B; b++)
        for (int t = 0; t + 1 < bt->T; t++) N += bt->labels[(size_t)b * bt->T + t + 1] != -100;
    return N;
}

/* h (N,C): the ln_f rows of the supervised positions, time-major order; tg (N) their
 * next labels; rows (N) their row in the activations. */
static void gather_supervised(const Ctx *c, const Batch *bt, float *h, int64_t *tg, size_t *rows) {
    int B = bt->B, T = bt->T, C = c->shape->n_embd;
    long k = 0;
    for (int t = 0; t + 1 < T; t++)
        for (int b = 0; b < B; b++) {
            int64_t y = bt->labels[(size_t)b * T + t + 1];
            if (y == -100) continue;
            rows[k] = (size_t)rows_of(&bt->out_rows, b, t);
            tg[k] = y;
            memcpy(h + (size_t)k * C, c->a->lnf + rows[k] * C, sizeof(float) * C);
            k++;
        }
}

/* Scatters the loss gradient dh (N,C) into the ln_f gradient, then runs every pass
 * backward in reverse order: a pass's backward completes the ln_f gradient of the
 * positions whose hidden states it read as thoughts. */
static void backward_passes(Ctx *c, const Batch *bt, const RowPlan *p, const float *dh, const size_t *rows,
                            long N) {
    int C = c->shape->n_embd;
    size_t n_rows = rows_first(&bt->rows, bt->T);
    Acts *a = c->a;
    fill_zero(a->dlnf, rows_first(&bt->out_rows, bt->T) * C);
    for (long i = 0; i < N; i++) {
        float *dst = a->dlnf + rows[i] * C;
        const float *src = dh + (size_t)i * C;
        for (int j = 0; j < C; j++) dst[j] += src[j];
    }
    add_hidden_grad(c, bt, c->shape->n_layer, 0, bt->T, a->dlnf, 0);
    for (int l = 0; l < c->shape->n_layer; l++) fill_zero(a->layers[l].dqkv, n_rows * 3 * C);
    if (p->soft.n) fill_zero(p->soft.dmix, (size_t)p->soft.n * C);
    for (int i = p->n_pass - 1; i >= 0; i--) {
        int t0 = p->bounds[i], t1 = p->bounds[i + 1];
        plan_set_live(p, (int64_t *)bt->mask, bt->B, bt->T, t0);
        backward_range(c, bt, t0, t1);
        if (p->soft.n) (p->soft.projected ? proj_backward : soft_backward)(c, bt, &p->soft, t0, t1);
    }
    backward_weights(c, bt);
}

/* The hidden cells' states (Batch.n_hid) after the forward passes. */
static void gather_hidden(const Ctx *c, const Batch *bt) {
    int C = c->shape->n_embd, E = c->shape->n_layer + 1;
    for (int k = 0; k < bt->n_hid; k++)
        for (int j = 0; j < E; j++)
            memcpy(bt->hid_out + ((size_t)k * E + j) * C, hidden_state_row(c, bt, j, (size_t)bt->hid_cell[k]),
                   sizeof(float) * C);
}

CoreStatus loss_forward(Ctx *c, const Batch *bt, const RowPlan *p, int backward, float grad_scale, double *loss,
                        long *n_supervised, LossState *ls) {
    int C = c->shape->n_embd, V = c->shape->vocab_size;
    memset(ls, 0, sizeof(*ls));
    long N = count_supervised(bt);
    *n_supervised = N;
    if (N == 0) return CORE_NO_SUPERVISED;
    /* the loss reads logits only where the next label is supervised */
    float *h = ls->h = core_malloc(sizeof(float) * (size_t)N * C * (backward ? 2 : 1));
    int64_t *tg = ls->tg = core_malloc(sizeof(int64_t) * (size_t)N);
    size_t *rows = ls->rows = core_malloc(sizeof(size_t) * (size_t)N);
    ls->N = N;
    if (!h || !tg || !rows) return CORE_OUT_OF_MEMORY;
    forward_passes(c, bt, p);
    gather_hidden(c, bt);
    gather_supervised(c, bt, h, tg, rows);
    /* ln_f's output stays fp32 (a thought reads it so); the LM head reads it in bf16 */
    if (c->bf16) bf16_round_copy(h, h, (size_t)N * C);
    float *dh = backward ? h + (size_t)N * C : NULL;
    if (dh) fill_zero(dh, (size_t)N * C);
    double total;
    CoreStatus st = lm_head_xent(&total, dh, backward ? c->g.wte : NULL, h, c->pm.wte, tg, (int)N, C, V,
                                 grad_scale / (float)N, c->bf16, c->a->s_dw_bf16);
    if (st == CORE_OK) *loss = total / (double)N;
    return st;
}

void loss_backward(Ctx *c, const Batch *bt, const RowPlan *p, const LossState *ls) {
    backward_passes(c, bt, p, ls->h + (size_t)ls->N * c->shape->n_embd, ls->rows, ls->N);
}

void loss_state_free(LossState *ls) {
    core_free(ls->h);
    core_free(ls->tg);
    core_free(ls->rows);
    memset(ls, 0, sizeof(*ls));
}

void run_forward(Ctx *c, const Batch *bt, const RowPlan *p, float *logits) {
    int B = bt->B, T = p->real_T, C = c->shape->n_embd, V = c->shape->vocab_size;
    forward_passes(c, bt, p);
    gather_hidden(c, bt);
    if (!logits) return;
    /* under the full map the B rows of one position are contiguous; write them
     * batch-major (the passes are done, so the layer-0 inputs, emb, are free scratch) */
    for (int t = 0; t < T; t++)
        lm_head_logits(logits + (size_t)t * V, (size_t)T * V, c->a->emb,
                       c->a->lnf + rows_first(&bt->out_rows, plan_column(p, t)) * C, c->pm.wte, B, C, V, c->bf16);
}
