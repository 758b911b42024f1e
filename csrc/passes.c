/* Forward of the rows of positions [t0, t1) of the whole batch against the key/value
 * cache of [0, t0), and the matching backward. An ordinary forward is the one range
 * [0, T); the thought schedule (thoughts.c) calls these once per pass.
 *
 * bf16 (c->bf16) follows torch.autocast("cpu", dtype=torch.bfloat16) on GPT-2: matrix
 * products (the linear layers, attention, the LM head) read bf16 operands, and their
 * outputs are bf16 tensors, so both are rounded to bf16, in place, by the kernels that
 * write them (their bf16 flag, kernels.h): the layernorm outputs (autocast casts them
 * for the product and saves that copy for backward), the product outputs qkv,
 * attention, fch, the two projections, and the GELU output (the next product's operand). The residual stream, layernorm, softmax, GELU and the loss
 * compute in fp32 from those values, as autocast's fp32 + bf16 sums and the upcast
 * logits do. Backward mirrors it: the gradient at a bf16 output is bf16 (rounded), and
 * so is each input gradient a product returns, and each weight and bias gradient,
 * rounded before it is added into the fp32 gradients (autocast's bf16 .grad parts). */
#include <string.h>

#include "attention.h"
#include "bf16.h"
#include "gpt2.h"
#include "kernels.h"
#include "parallel.h"

enum { SITE_EMB = 0 };
static uint64_t site_attn(int l) { return 1 + 3 * (uint64_t)l; }
static uint64_t site_res_attn(int l) { return 2 + 3 * (uint64_t)l; }
static uint64_t site_res_mlp(int l) { return 3 + 3 * (uint64_t)l; }

/* Layer l's map after its key/value product: the last layer computes attention, MLP and
 * ln_f only for the cells whose output is read (out_rows); every other layer for every
 * cell with a row, since the keys and values of the next layer need them all. */
static const RowMap *query_rows(const Batch *bt, int l, int L) {
    return l == L - 1 ? &bt->out_rows : &bt->rows;
}

static int same_rows(const RowMap *a, const RowMap *b) {
    return a->row == b->row;
}

/* y (rows [q0, q1) of qm) += x (rows of km, a superset): the residual of the cells
 * that go on */
static void add_rows(float *y, const RowMap *qm, size_t q0, size_t q1, const float *x, const RowMap *km, int C) {
    if (same_rows(qm, km)) {
        add_inplace(y, x + q0 * C, (q1 - q0) * C);
        return;
    }
    #pragma omp parallel for schedule(static) PAR_IF((q1 - q0) * C)
    for (size_t r = q0; r < q1; r++) {
        const float *xr = x + (size_t)rows_of_cell(km, rows_cell(qm, r)) * C;
        float *yr = y + (r - q0) * C;
        for (int k = 0; k < C; k++) yr[k] += xr[k];
    }
}

/* dst (rows [r0, r1) of km) = src (rows [q0, q1) of qm, a subset), zero elsewhere */
static void spread_rows(float *dst, const RowMap *km, size_t r0, size_t r1, const float *src, const RowMap *qm,
                        size_t q0, size_t q1, int C) {
    fill_zero(dst, (r1 - r0) * C);
    #pragma omp parallel for schedule(static) PAR_IF((q1 - q0) * C)
    for (size_t r = q0; r < q1; r++) {
        size_t k = (size_t)rows_of_cell(km, rows_cell(qm, r));
        memcpy(dst + (k - r0) * C, src + (r - q0) * C, sizeof(float) * C);
    }
}

/* Input of cell (b, t): a token embedding, or, for a thought slot, the vector fed back
 * (computed by an earlier pass: an ln_f output, or a soft mixture), plus the position
 * embedding. */
static void embed_forward(Ctx *c, const Batch *bt, size_t r0, size_t r1) {
    const RowMap *m = &bt->rows;
    int C = c->shape->n_embd;
    Acts *a = c->a;
    #pragma omp parallel for schedule(static) PAR_IF((r1 - r0) * C)
    for (size_t r = r0; r < r1; r++) {
        size_t i = rows_cell(m, r);
        const float *src = !(bt->is_thought && bt->is_thought[i]) ? c->p.wte + (size_t)bt->ids[i] * C
            : bt->thought_in ? bt->thought_in + (size_t)bt->thought_index[i] * C
            : a->lnf + (size_t)rows_of_cell(&bt->out_rows, thought_source(bt, i)) * C;
        const float *pe = c->p.wpe + (size_t)bt->pos[i] * C;
        float *o = a->emb + r * C;
        for (int k = 0; k < C; k++) o[k] = src[k] + pe[k];
    }
    dropout_rows(a->emb + r0 * C, m, r0, r1, C, dropout_site(c->drop.seed, SITE_EMB), c->drop.p);
}

static void embed_backward(Ctx *c, const Batch *bt, size_t r0, size_t r1, float *demb) {
    const RowMap *m = &bt->rows;
    int C = c->shape->n_embd;
    Acts *a = c->a;
    dropout_rows(demb, m, r0, r1, C, dropout_site(c->drop.seed, SITE_EMB), c->drop.p);
    /* threads own slices of channels, so rows sharing a token never race */
    #pragma omp parallel for schedule(static) PAR_IF((r1 - r0) * C)
    for (int k0 = 0; k0 < C; k0 += 32) {
        int k1 = k0 + 32 < C ? k0 + 32 : C;
        for (size_t r = r0; r < r1; r++) {
            size_t i = rows_cell(m, r);
            const float *d = demb + (r - r0) * C;
            float *dst = !(bt->is_thought && bt->is_thought[i]) ? c->g.wte + (size_t)bt->ids[i] * C
                : bt->d_thought_in ? bt->d_thought_in + (size_t)bt->thought_index[i] * C
                : a->dlnf + (size_t)rows_of_cell(&bt->out_rows, thought_source(bt, i)) * C;
            float *dpe = c->g.wpe + (size_t)bt->pos[i] * C;
            for (int k = k0; k < k1; k++) { dst[k] += d[k]; dpe[k] += d[k]; }
        }
    }
}

void forward_range(Ctx *c, const Batch *bt, int t0, int t1) {
    const GPT2Shape *s = c->shape;
    int C = s->n_embd, L = s->n_layer;
    const RowMap *km = &bt->rows;
    size_t r0 = rows_first(km, t0), r1 = rows_first(km, t1);
    int R = (int)(r1 - r0);
    Acts *a = c->a;
    const ParamPtrs *p = &c->p, *pm = &c->pm;
    float pd = c->drop.p;

    embed_forward(c, bt, r0, r1);
    const float *x = a->emb;
    for (int l = 0; l < L; l++) {
        LayerActs *la = &a->layers[l];
        const RowMap *qm = query_rows(bt, l, L);
        size_t q0 = rows_first(qm, t0), q1 = rows_first(qm, t1);
        int Q = (int)(q1 - q0);
        layernorm_forward(la->ln1 + r0 * C, la->ln1_mean + r0, la->ln1_rstd + r0, x + r0 * C,
                          p->ln1_w + (size_t)l * C, p->ln1_b + (size_t)l * C, R, C, c->bf16);
        linear_forward(la->qkv + r0 * 3 * C, la->ln1 + r0 * C, pm->qkv_w + (size_t)l * C * 3 * C,
                       pm->qkv_b + (size_t)l * 3 * C, R, C, 3 * C, c->bf16);
        attention_forward(la->atty, la->lse, a->s_attn, la->qkv, km, qm, bt->mask, t0, t1, C, s->n_head,
                          a->attn_threads, dropout_site(c->drop.seed, site_attn(l)), pd, c->bf16);
        /* res1 = x + dropout(atty @ W + b) */
        linear_forward(la->res1 + q0 * C, la->atty + q0 * C, pm->attproj_w + (size_t)l * C * C,
                       pm->attproj_b + (size_t)l * C, Q, C, C, c->bf16);
        dropout_rows(la->res1 + q0 * C, qm, q0, q1, C, dropout_site(c->drop.seed, site_res_attn(l)), pd);
        add_rows(la->res1 + q0 * C, qm, q0, q1, x, km, C);
        layernorm_forward(la->ln2 + q0 * C, la->ln2_mean + q0, la->ln2_rstd + q0, la->res1 + q0 * C,
                          p->ln2_w + (size_t)l * C, p->ln2_b + (size_t)l * C, Q, C, c->bf16);
        linear_forward(la->fch + q0 * 4 * C, la->ln2 + q0 * C, pm->fc_w + (size_t)l * C * 4 * C,
                       pm->fc_b + (size_t)l * 4 * C, Q, C, 4 * C, c->bf16);
        gelu_forward(la->gelu + q0 * 4 * C, la->fch + q0 * 4 * C, (size_t)Q * 4 * C, c->bf16);
        /* res2 = res1 + dropout(gelu(fch) @ W + b) */
        linear_forward(la->res2 + q0 * C, la->gelu + q0 * 4 * C, pm->fcproj_w + (size_t)l * 4 * C * C,
                       pm->fcproj_b + (size_t)l * C, Q, 4 * C, C, c->bf16);
        dropout_rows(la->res2 + q0 * C, qm, q0, q1, C, dropout_site(c->drop.seed, site_res_mlp(l)), pd);
        add_inplace(la->res2 + q0 * C, la->res1 + q0 * C, (size_t)Q * C);
        x = la->res2;
    }
    /* x is in out_rows (with no layers, rows is out_rows) */
    size_t o0 = rows_first(&bt->out_rows, t0), o1 = rows_first(&bt->out_rows, t1);
    layernorm_forward(a->lnf + o0 * C, a->lnf_mean + o0, a->lnf_rstd + o0, x + o0 * C,
                      p->lnf_w, p->lnf_b, (int)(o1 - o0), C, 0);
}

/* Copies rows [r0, r1) into dst and applies the dropout mask of `site`, which is the
 * backward of dropout (the same mask and scale). Scratch rows are range-relative. bf16:
 * the gradient at a projection's bf16 output, rounded. */
static void masked_copy(float *dst, const float *src, const RowMap *m, size_t r0, size_t r1, int C,
                        uint64_t key, float pd, int bf16) {
    memcpy(dst, src, sizeof(float) * (r1 - r0) * C);
    dropout_rows(dst, m, r0, r1, C, key, pd);
    if (bf16) bf16_round_copy(dst, dst, (r1 - r0) * C);
}

void backward_range(Ctx *c, const Batch *bt, int t0, int t1) {
    const GPT2Shape *s = c->shape;
    int C = s->n_embd, L = s->n_layer;
    const RowMap *km = &bt->rows, *om = &bt->out_rows;
    size_t r0 = rows_first(km, t0), r1 = rows_first(km, t1);
    size_t o0 = rows_first(om, t0), o1 = rows_first(om, t1);
    int R = (int)(r1 - r0);
    Acts *a = c->a;
    const ParamPtrs *p = &c->p, *pm = &c->pm, *g = &c->g;
    float pd = c->drop.p;
    float *dx = a->s_dx;
    /* dres: gradient of the residual stream at the current depth, range rows only; in
     * the last layer's rows after attention it lives in out_rows (dres_out) */
    float *dres = a->s_dres, *dres_out = same_rows(om, km) ? dres : a->s_dres_out;

    fill_zero(dres_out, (o1 - o0) * C);
    const float *x_last = L > 0 ? a->layers[L - 1].res2 : a->emb;
    layernorm_backward(dres_out, g->lnf_w, g->lnf_b, a->dlnf + o0 * C, x_last + o0 * C, p->lnf_w,
                       a->lnf_mean + o0, a->lnf_rstd + o0, (int)(o1 - o0), C);
    for (int l = L - 1; l >= 0; l--) {
        LayerActs *la = &a->layers[l];
        const RowMap *qm = query_rows(bt, l, L);
        size_t q0 = rows_first(qm, t0), q1 = rows_first(qm, t1);
        int Q = (int)(q1 - q0);
        float *dq = l == L - 1 ? dres_out : dres;   /* the residual gradient in qm's rows */
        const float *x_in = l == 0 ? a->emb : a->layers[l - 1].res2;
        float *d_fcproj = la->d_fcproj + q0 * C, *d_fc = la->d_fc + q0 * 4 * C;
        float *d_attproj = la->d_attproj + q0 * C;

        /* MLP branch: res2 = res1 + dropout(gelu(fch) @ Wp + bp), fch = ln2 @ Wf + bf */
        masked_copy(d_fcproj, dq, qm, q0, q1, C, dropout_site(c->drop.seed, site_res_mlp(l)), pd, c->bf16);
        linear_backward_input(d_fc, d_fcproj, pm->fcproj_w + (size_t)l * 4 * C * C, Q, 4 * C, C, c->bf16);
        gelu_backward(d_fc, la->fch + q0 * 4 * C, d_fc, (size_t)Q * 4 * C, c->bf16);
        linear_backward_input(dx, d_fc, pm->fc_w + (size_t)l * C * 4 * C, Q, C, 4 * C, c->bf16);
        layernorm_backward(dq, g->ln2_w + (size_t)l * C, g->ln2_b + (size_t)l * C, dx,
                           la->res1 + q0 * C, p->ln2_w + (size_t)l * C, la->ln2_mean + q0,
                           la->ln2_rstd + q0, Q, C);

        /* attention branch: res1 = x_in + dropout(atty @ Wp + bp) */
        masked_copy(d_attproj, dq, qm, q0, q1, C, dropout_site(c->drop.seed, site_res_attn(l)), pd, c->bf16);
        float *datty = a->s_dbig; /* (Q, C) */
        linear_backward_input(datty, d_attproj, pm->attproj_w + (size_t)l * C * C, Q, C, C, c->bf16);
        /* dQ of the range, and dK/dV of every position it attended to: earlier passes
         * find the keys/values gradient of their positions waiting in la->dqkv */
        attention_backward(la->dqkv, a->s_attn, datty, la->qkv, la->atty, la->lse, km, qm, bt->mask, t0, t1,
                           C, s->n_head, a->attn_threads, dropout_site(c->drop.seed, site_attn(l)), pd,
                           c->bf16);
        linear_backward_input(dx, la->dqkv + r0 * 3 * C, pm->qkv_w + (size_t)l * C * 3 * C, R, C, 3 * C, c->bf16);
        /* the residual passes the gradient of the cells that went on to every row */
        if (dq != dres) spread_rows(dres, km, r0, r1, dq, qm, q0, q1, C);
        layernorm_backward(dres, g->ln1_w + (size_t)l * C, g->ln1_b + (size_t)l * C, dx,
                           x_in + r0 * C, p->ln1_w + (size_t)l * C, la->ln1_mean + r0,
                           la->ln1_rstd + r0, R, C);
        /* dres is now the gradient of block l's input: hidden-state entry l */
        add_hidden_grad(c, bt, l, t0, t1, dres, r0);
    }
    embed_backward(c, bt, r0, r1, dres);
}

float *hidden_state_row(const Ctx *c, const Batch *bt, int j, size_t i) {
    int C = c->shape->n_embd, L = c->shape->n_layer;
    if (j == L) return c->a->lnf + (size_t)rows_of_cell(&bt->out_rows, i) * C;
    const float *x = j == 0 ? c->a->emb : c->a->layers[j - 1].res2;
    return (float *)x + (size_t)rows_of_cell(&bt->rows, i) * C;
}

void add_hidden_grad(const Ctx *c, const Batch *bt, int j, int t0, int t1, float *d, size_t r0) {
    if (!bt->hid_grad) return;
    int C = c->shape->n_embd, E = c->shape->n_layer + 1;
    const RowMap *m = j == E - 1 ? &bt->out_rows : &bt->rows;
    for (int k = 0; k < bt->n_hid; k++) {
        size_t i = (size_t)bt->hid_cell[k];
        int t = (int)(i % (size_t)bt->T);
        if (t < t0 || t >= t1) continue;
        float *dst = d + ((size_t)rows_of_cell(m, i) - r0) * C;
        const float *src = bt->hid_grad + ((size_t)k * E + j) * C;
        for (int q = 0; q < C; q++) dst[q] += src[q];
    }
}

/* The weight gradients of one linear layer (see linear_backward_weights*). */
static void weights_grad(Ctx *c, float *dw, float *db, const float *dy, const float *x, int N, int IC, int OC) {
    if (c->bf16) linear_backward_weights_bf16(dw, db, c->a->s_dw_bf16, dy, x, N, IC, OC);
    else linear_backward_weights(dw, db, dy, x, N, IC, OC);
}

void backward_weights(Ctx *c, const Batch *bt) {
    const GPT2Shape *s = c->shape;
    int C = s->n_embd, L = s->n_layer, N = (int)rows_first(&bt->rows, bt->T);
    Acts *a = c->a;
    const ParamPtrs *g = &c->g;
    for (int l = 0; l < L; l++) {
        LayerActs *la = &a->layers[l];
        int Q = (int)rows_first(query_rows(bt, l, L), bt->T);
        /* the GELU outputs were kept by the forward (bf16: already rounded) */
        weights_grad(c, g->fcproj_w + (size_t)l * 4 * C * C, g->fcproj_b + (size_t)l * C, la->d_fcproj, la->gelu,
                     Q, 4 * C, C);
        weights_grad(c, g->fc_w + (size_t)l * C * 4 * C, g->fc_b + (size_t)l * 4 * C, la->d_fc, la->ln2, Q, C, 4 * C);
        weights_grad(c, g->attproj_w + (size_t)l * C * C, g->attproj_b + (size_t)l * C, la->d_attproj, la->atty,
                     Q, C, C);
        weights_grad(c, g->qkv_w + (size_t)l * C * 3 * C, g->qkv_b + (size_t)l * 3 * C, la->dqkv, la->ln1,
                     N, C, 3 * C);
    }
}
