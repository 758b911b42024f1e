/* Forward of the rows of positions [t0, t1) of the whole batch against the key/value
 * cache of [0, t0), and the matching backward. An ordinary forward is the one range
 * [0, T); the thought schedule (thoughts.c) calls these once per pass.
 *
 * bf16 (c->bf16) follows torch.autocast("cpu", dtype=torch.bfloat16) on GPT-2: matrix
 * products (the linear layers, attention, the LM head) read bf16 operands, and their
 * outputs are bf16 tensors, so both are rounded to bf16 here, in place: the layernorm
 * outputs (autocast casts them for the product and saves that copy for backward), the
 * product outputs qkv, attention, fch, the two projections, and the GELU output (the
 * next product's operand). The residual stream, layernorm, softmax, GELU and the loss
 * compute in fp32 from those values, as autocast's fp32 + bf16 sums and the upcast
 * logits do. Backward mirrors it: the gradient at a bf16 output is bf16 (rounded), and
 * so is each input gradient a product returns, and each weight and bias gradient,
 * rounded before it is added into the fp32 gradients (autocast's bf16 .grad parts). */
#include <string.h>

#include "bf16.h"
#include "gpt2.h"
#include "kernels.h"

static void to_bf16(const Ctx *c, float *x, size_t n) {
    if (c->bf16) bf16_round_copy(x, x, n);
}

enum { SITE_EMB = 0 };
static uint64_t site_attn(int l) { return 1 + 3 * (uint64_t)l; }
static uint64_t site_res_attn(int l) { return 2 + 3 * (uint64_t)l; }
static uint64_t site_res_mlp(int l) { return 3 + 3 * (uint64_t)l; }

/* Input of cell (b, t): a token embedding, or, for a thought slot, the ln_f output
 * of position t-1 (computed by an earlier pass), plus the position embedding. */
static void embed_forward(Ctx *c, const Batch *bt, size_t r0, size_t r1) {
    const RowMap *m = &bt->rows;
    int T = bt->T, C = c->shape->n_embd;
    Acts *a = c->a;
    #pragma omp parallel for schedule(static) PAR_IF((r1 - r0) * C)
    for (size_t r = r0; r < r1; r++) {
        size_t i = rows_cell(m, r);
        const float *src = bt->is_thought && bt->is_thought[i]
            ? a->lnf + (size_t)rows_of(m, (int)(i / T), (int)(i % T) - 1) * C
            : c->p.wte + (size_t)bt->ids[i] * C;
        const float *pe = c->p.wpe + (size_t)bt->pos[i] * C;
        float *o = a->emb + r * C;
        for (int k = 0; k < C; k++) o[k] = src[k] + pe[k];
    }
    dropout_rows(a->emb + r0 * C, m, r0, r1, C, dropout_site(c->drop.seed, SITE_EMB), c->drop.p);
}

static void embed_backward(Ctx *c, const Batch *bt, size_t r0, size_t r1, float *demb) {
    const RowMap *m = &bt->rows;
    int T = bt->T, C = c->shape->n_embd;
    Acts *a = c->a;
    dropout_rows(demb, m, r0, r1, C, dropout_site(c->drop.seed, SITE_EMB), c->drop.p);
    /* threads own slices of channels, so rows sharing a token never race */
    #pragma omp parallel for schedule(static) PAR_IF((r1 - r0) * C)
    for (int k0 = 0; k0 < C; k0 += 32) {
        int k1 = k0 + 32 < C ? k0 + 32 : C;
        for (size_t r = r0; r < r1; r++) {
            size_t i = rows_cell(m, r);
            const float *d = demb + (r - r0) * C;
            float *dst = bt->is_thought && bt->is_thought[i]
                ? a->dlnf + (size_t)rows_of(m, (int)(i / T), (int)(i % T) - 1) * C
                : c->g.wte + (size_t)bt->ids[i] * C;
            float *dpe = c->g.wpe + (size_t)bt->pos[i] * C;
            for (int k = k0; k < k1; k++) { dst[k] += d[k]; dpe[k] += d[k]; }
        }
    }
}

void forward_range(Ctx *c, const Batch *bt, int t0, int t1) {
    const GPT2Shape *s = c->shape;
    int C = s->n_embd, L = s->n_layer;
    const RowMap *m = &bt->rows;
    size_t r0 = rows_first(m, t0), r1 = rows_first(m, t1);
    int R = (int)(r1 - r0);
    Acts *a = c->a;
    const ParamPtrs *p = &c->p, *pm = &c->pm;
    float pd = c->drop.p;

    embed_forward(c, bt, r0, r1);
    const float *x = a->emb;
    for (int l = 0; l < L; l++) {
        LayerActs *la = &a->layers[l];
        layernorm_forward(la->ln1 + r0 * C, la->ln1_mean + r0, la->ln1_rstd + r0, x + r0 * C,
                          p->ln1_w + (size_t)l * C, p->ln1_b + (size_t)l * C, R, C);
        to_bf16(c, la->ln1 + r0 * C, (size_t)R * C);
        linear_forward(la->qkv + r0 * 3 * C, la->ln1 + r0 * C, pm->qkv_w + (size_t)l * C * 3 * C,
                       pm->qkv_b + (size_t)l * 3 * C, R, C, 3 * C, c->bf16);
        to_bf16(c, la->qkv + r0 * 3 * C, (size_t)R * 3 * C);
        attention_forward(la->atty, la->lse, a->s_attn, la->qkv, m, bt->mask, t0, t1, C, s->n_head,
                          a->attn_threads, dropout_site(c->drop.seed, site_attn(l)), pd, c->bf16);
        to_bf16(c, la->atty + r0 * C, (size_t)R * C);
        /* res1 = x + dropout(atty @ W + b) */
        linear_forward(la->res1 + r0 * C, la->atty + r0 * C, pm->attproj_w + (size_t)l * C * C,
                       pm->attproj_b + (size_t)l * C, R, C, C, c->bf16);
        to_bf16(c, la->res1 + r0 * C, (size_t)R * C);
        dropout_rows(la->res1 + r0 * C, m, r0, r1, C, dropout_site(c->drop.seed, site_res_attn(l)), pd);
        add_inplace(la->res1 + r0 * C, x + r0 * C, (size_t)R * C);
        layernorm_forward(la->ln2 + r0 * C, la->ln2_mean + r0, la->ln2_rstd + r0, la->res1 + r0 * C,
                          p->ln2_w + (size_t)l * C, p->ln2_b + (size_t)l * C, R, C);
        to_bf16(c, la->ln2 + r0 * C, (size_t)R * C);
        linear_forward(la->fch + r0 * 4 * C, la->ln2 + r0 * C, pm->fc_w + (size_t)l * C * 4 * C,
                       pm->fc_b + (size_t)l * 4 * C, R, C, 4 * C, c->bf16);
        to_bf16(c, la->fch + r0 * 4 * C, (size_t)R * 4 * C);
        gelu_forward(la->gelu + r0 * 4 * C, la->fch + r0 * 4 * C, (size_t)R * 4 * C);
        to_bf16(c, la->gelu + r0 * 4 * C, (size_t)R * 4 * C);
        /* res2 = res1 + dropout(gelu(fch) @ W + b) */
        linear_forward(la->res2 + r0 * C, la->gelu + r0 * 4 * C, pm->fcproj_w + (size_t)l * 4 * C * C,
                       pm->fcproj_b + (size_t)l * C, R, 4 * C, C, c->bf16);
        to_bf16(c, la->res2 + r0 * C, (size_t)R * C);
        dropout_rows(la->res2 + r0 * C, m, r0, r1, C, dropout_site(c->drop.seed, site_res_mlp(l)), pd);
        add_inplace(la->res2 + r0 * C, la->res1 + r0 * C, (size_t)R * C);
        x = la->res2;
    }
    layernorm_forward(a->lnf + r0 * C, a->lnf_mean + r0, a->lnf_rstd + r0, x + r0 * C,
                      p->lnf_w, p->lnf_b, R, C);
}

/* Copies rows of the range into dst and applies the dropout mask of `site`, which is
 * the backward of dropout (the same mask and scale). Scratch rows are range-relative. */
static void masked_copy(float *dst, const float *src, const RowMap *m, size_t r0, size_t r1, int C,
                        uint64_t key, float pd) {
    memcpy(dst, src, sizeof(float) * (r1 - r0) * C);
    dropout_rows(dst, m, r0, r1, C, key, pd);
}

void backward_range(Ctx *c, const Batch *bt, int t0, int t1) {
    const GPT2Shape *s = c->shape;
    int C = s->n_embd, L = s->n_layer;
    const RowMap *m = &bt->rows;
    size_t r0 = rows_first(m, t0), r1 = rows_first(m, t1);
    int R = (int)(r1 - r0);
    Acts *a = c->a;
    const ParamPtrs *p = &c->p, *pm = &c->pm, *g = &c->g;
    float pd = c->drop.p;
    float *dres = a->s_dres, *dx = a->s_dx;

    /* dres: gradient of the residual stream at the current depth, range rows only */
    fill_zero(dres, (size_t)R * C);
    const float *x_last = L > 0 ? a->layers[L - 1].res2 : a->emb;
    layernorm_backward(dres, g->lnf_w, g->lnf_b, a->dlnf + r0 * C, x_last + r0 * C, p->lnf_w,
                       a->lnf_mean + r0, a->lnf_rstd + r0, R, C);
    for (int l = L - 1; l >= 0; l--) {
        LayerActs *la = &a->layers[l];
        const float *x_in = l == 0 ? a->emb : a->layers[l - 1].res2;
        float *d_fcproj = la->d_fcproj + r0 * C, *d_fc = la->d_fc + r0 * 4 * C;
        float *d_attproj = la->d_attproj + r0 * C;

        /* MLP branch: res2 = res1 + dropout(gelu(fch) @ Wp + bp), fch = ln2 @ Wf + bf */
        masked_copy(d_fcproj, dres, m, r0, r1, C, dropout_site(c->drop.seed, site_res_mlp(l)), pd);
        to_bf16(c, d_fcproj, (size_t)R * C);
        linear_backward_input(d_fc, d_fcproj, pm->fcproj_w + (size_t)l * 4 * C * C, R, 4 * C, C, c->bf16);
        to_bf16(c, d_fc, (size_t)R * 4 * C);
        gelu_backward(d_fc, la->fch + r0 * 4 * C, d_fc, (size_t)R * 4 * C);
        to_bf16(c, d_fc, (size_t)R * 4 * C);
        linear_backward_input(dx, d_fc, pm->fc_w + (size_t)l * C * 4 * C, R, C, 4 * C, c->bf16);
        to_bf16(c, dx, (size_t)R * C);
        layernorm_backward(dres, g->ln2_w + (size_t)l * C, g->ln2_b + (size_t)l * C, dx,
                           la->res1 + r0 * C, p->ln2_w + (size_t)l * C, la->ln2_mean + r0,
                           la->ln2_rstd + r0, R, C);

        /* attention branch: res1 = x_in + dropout(atty @ Wp + bp) */
        masked_copy(d_attproj, dres, m, r0, r1, C, dropout_site(c->drop.seed, site_res_attn(l)), pd);
        to_bf16(c, d_attproj, (size_t)R * C);
        float *datty = a->s_dbig; /* (R, C) */
        linear_backward_input(datty, d_attproj, pm->attproj_w + (size_t)l * C * C, R, C, C, c->bf16);
        to_bf16(c, datty, (size_t)R * C);
        /* dQ of the range, and dK/dV of every position it attended to: earlier passes
         * find the keys/values gradient of their positions waiting in la->dqkv */
        attention_backward(la->dqkv, a->s_attn, datty, la->qkv, la->atty, la->lse, m, bt->mask, t0, t1,
                           C, s->n_head, a->attn_threads, dropout_site(c->drop.seed, site_attn(l)), pd,
                           c->bf16);
        /* bf16: the rows of [0, t1) hold bf16 sums. Those of this range are complete (later
         * passes ran their backward already); for the cached rows [0, t0), autocast adds
         * each pass's bf16 key/value gradient into a bf16 tensor, which rounding the
         * running sum after every pass reproduces (up to a double rounding). */
        to_bf16(c, la->dqkv, r1 * 3 * C);
        linear_backward_input(dx, la->dqkv + r0 * 3 * C, pm->qkv_w + (size_t)l * C * 3 * C, R, C, 3 * C, c->bf16);
        to_bf16(c, dx, (size_t)R * C);
        layernorm_backward(dres, g->ln1_w + (size_t)l * C, g->ln1_b + (size_t)l * C, dx,
                           x_in + r0 * C, p->ln1_w + (size_t)l * C, la->ln1_mean + r0,
                           la->ln1_rstd + r0, R, C);
    }
    embed_backward(c, bt, r0, r1, dres);
}

/* The weight gradients of one linear layer (see linear_backward_weights*). */
static void weights_grad(Ctx *c, float *dw, float *db, const float *dy, const float *x, int N, int IC, int OC) {
    if (c->bf16) linear_backward_weights_bf16(dw, db, c->a->s_dw_bf16, dy, x, N, IC, OC);
    else linear_backward_weights(dw, db, dy, x, N, IC, OC);
}

void backward_weights(Ctx *c, const Batch *bt) {
    const GPT2Shape *s = c->shape;
    int C = s->n_embd, N = (int)rows_first(&bt->rows, bt->T);
    Acts *a = c->a;
    const ParamPtrs *g = &c->g;
    for (int l = 0; l < s->n_layer; l++) {
        LayerActs *la = &a->layers[l];
        /* the GELU outputs were kept by the forward (bf16: already rounded) */
        weights_grad(c, g->fcproj_w + (size_t)l * 4 * C * C, g->fcproj_b + (size_t)l * C, la->d_fcproj, la->gelu,
                     N, 4 * C, C);
        weights_grad(c, g->fc_w + (size_t)l * C * 4 * C, g->fc_b + (size_t)l * 4 * C, la->d_fc, la->ln2, N, C, 4 * C);
        weights_grad(c, g->attproj_w + (size_t)l * C * C, g->attproj_b + (size_t)l * C, la->d_attproj, la->atty,
                     N, C, C);
        weights_grad(c, g->qkv_w + (size_t)l * C * 3 * C, g->qkv_b + (size_t)l * 3 * C, la->dqkv, la->ln1,
                     N, C, 3 * C);
    }
}
