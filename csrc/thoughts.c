#include "thoughts.h"

#include <string.h>

#include "alloc.h"
#include "bf16.h"
#include "kernels.h"

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
static void backward_passes(Ctx *c, const Batch *bt, const int *bounds, int n_pass, const float *dh,
                            const size_t *rows, long N) {
    int C = c->shape->n_embd;
    size_t n_rows = rows_first(&bt->rows, bt->T);
    Acts *a = c->a;
    fill_zero(a->dlnf, rows_first(&bt->out_rows, bt->T) * C);
    for (long i = 0; i < N; i++) {
        float *dst = a->dlnf + rows[i] * C;
        const float *src = dh + (size_t)i * C;
        for (int j = 0; j < C; j++) dst[j] += src[j];
    }
    for (int l = 0; l < c->shape->n_layer; l++) fill_zero(a->layers[l].dqkv, n_rows * 3 * C);
    for (int i = n_pass - 1; i >= 0; i--) backward_range(c, bt, bounds[i], bounds[i + 1]);
    backward_weights(c, bt);
}

CoreStatus run_loss(Ctx *c, const Batch *bt, const int *bounds, int n_pass, int backward,
                    float grad_scale, double *loss, long *n_supervised) {
    int C = c->shape->n_embd, V = c->shape->vocab_size;
    long N = count_supervised(bt);
    *n_supervised = N;
    if (N == 0) return CORE_NO_SUPERVISED;
    CoreStatus st = CORE_OUT_OF_MEMORY;
    /* the loss reads logits only where the next label is supervised */
    float *h = core_malloc(sizeof(float) * (size_t)N * C * (backward ? 2 : 1));
    int64_t *tg = core_malloc(sizeof(int64_t) * (size_t)N);
    size_t *rows = core_malloc(sizeof(size_t) * (size_t)N);
    if (!h || !tg || !rows) goto cleanup;
    for (int i = 0; i < n_pass; i++) forward_range(c, bt, bounds[i], bounds[i + 1]);
    gather_supervised(c, bt, h, tg, rows);
    /* ln_f's output stays fp32 (a thought reads it so); the LM head reads it in bf16 */
    if (c->bf16) bf16_round_copy(h, h, (size_t)N * C);
    float *dh = backward ? h + (size_t)N * C : NULL;
    if (dh) fill_zero(dh, (size_t)N * C);
    double total;
    st = lm_head_xent(&total, dh, backward ? c->g.wte : NULL, h, c->pm.wte, tg, (int)N, C, V,
                      grad_scale / (float)N, c->bf16, c->a->s_dw_bf16);
    if (st != CORE_OK) goto cleanup;
    *loss = total / (double)N;
    if (backward) backward_passes(c, bt, bounds, n_pass, dh, rows, N);
cleanup:
    core_free(h);
    core_free(tg);
    core_free(rows);
    return st;
}

void run_forward(Ctx *c, const Batch *bt, const int *bounds, int n_pass, float *logits) {
    int B = bt->B, T = bt->T, C = c->shape->n_embd, V = c->shape->vocab_size;
    for (int i = 0; i < n_pass; i++) forward_range(c, bt, bounds[i], bounds[i + 1]);
    if (!logits) return;
    /* under the full map the B rows of one position are contiguous; write them
     * batch-major (the passes are done, so the layer-0 inputs, emb, are free scratch) */
    for (int t = 0; t < T; t++)
        lm_head_logits(logits + (size_t)t * V, (size_t)T * V, c->a->emb, c->a->lnf + rows_first(&bt->out_rows, t) * C,
                       c->pm.wte, B, C, V, c->bf16);
}
