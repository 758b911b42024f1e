#include "generate.h"

#include <math.h>
#include <string.h>

#include "alloc.h"
#include "kernels.h"
#include "parallel.h"

CoreStatus decoding_batch(DecodingBatch *d, const Batch *prompts, int max_new, int64_t eos_id) {
    int B = prompts->B, Tp = prompts->T, T = Tp + max_new - 1;
    d->cols = core_malloc(sizeof(int64_t) * (size_t)B * T * 3);
    d->is_thought = core_calloc((size_t)B * T, 1);
    d->maps = core_malloc(sizeof(int32_t) * (size_t)B * T * 2);
    if (!d->cols || !d->is_thought || !d->maps) return CORE_OUT_OF_MEMORY;
    int64_t *ids = d->cols, *mask = ids + (size_t)B * T, *pos = mask + (size_t)B * T;
    int32_t *src_col = d->maps, *index = d->maps + (size_t)B * T;
    d->bt = (Batch){B, T, ids, mask, pos, NULL, d->is_thought, rows_full(B, T), rows_full(B, T),
                    prompts->src_col ? src_col : NULL, prompts->thought_index ? index : NULL,
                    prompts->thought_in, NULL};
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t, j = (size_t)b * Tp + t;
            int in = t < Tp;
            ids[i] = in ? prompts->ids[j] : eos_id;
            mask[i] = in ? prompts->mask[j] : 0;
            pos[i] = in ? prompts->pos[j] : 0;
            d->is_thought[i] = in ? prompts->is_thought[j] : 0;
            src_col[i] = in && prompts->src_col ? prompts->src_col[j] : -1;
            index[i] = in && prompts->thought_index ? prompts->thought_index[j] : -1;
        }
    return CORE_OK;
}

void decoding_batch_free(DecodingBatch *d) {
    core_free(d->cols);
    core_free(d->is_thought);
    core_free(d->maps);
    *d = (DecodingBatch){0};
}

/* Greedy choice for the B rows of column t: logits = ln_f output @ wte^T (the layer-0
 * inputs, emb, are free scratch between passes: inference keeps nothing for a backward). Returns the number of rows still decoding (not done)
 * with a logit that is not finite. */
static int argmax_column(Ctx *c, const Batch *bt, int t, const uint8_t *done, float *logits, int64_t *best) {
    int B = bt->B, C = c->shape->n_embd, V = c->shape->vocab_size;
    lm_head_logits(logits, (size_t)V, c->a->emb, c->a->lnf + rows_first(&bt->out_rows, t) * C, c->pm.wte, B, C,
                   V, c->bf16);
    int bad = 0;
    #pragma omp parallel for reduction(+:bad) schedule(static) PAR_IF((size_t)B * V)
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * V;
        int k = 0, finite = 1;
        for (int v = 0; v < V; v++) {   /* one sweep: the first maximum, as argmax, and finiteness */
            finite &= isfinite(z[v]) != 0;
            if (z[v] > z[k]) k = v;
        }
        best[b] = k;
        bad += !finite && !done[b];
    }
    return bad;
}

CoreStatus run_generate(Ctx *c, Batch *bt, int Tp, const RowPlan *p, int max_new, int64_t eos_id, int64_t *out,
                        int64_t *n_out) {
    int B = bt->B, T = bt->T, P = c->shape->n_positions;
    int64_t *ids = (int64_t *)bt->ids, *mask = (int64_t *)bt->mask, *pos = (int64_t *)bt->pos;
    CoreStatus st = CORE_OUT_OF_MEMORY;
    float *logits = core_malloc(sizeof(float) * (size_t)B * c->shape->vocab_size);
    int64_t *best = core_malloc(sizeof(int64_t) * (size_t)B);
    uint8_t *done = core_calloc((size_t)B, 1);
    if (!logits || !best || !done) goto cleanup;
    st = CORE_OK;
    for (size_t i = 0; i < (size_t)B * max_new; i++) out[i] = -1;
    memset(n_out, 0, sizeof(int64_t) * (size_t)B);

    forward_passes(c, bt, p);
    int t = Tp - 1; /* column whose logits choose the next token */
    for (int step = 0; step < max_new; step++) {
        if (argmax_column(c, bt, t, done, logits, best)) { st = CORE_NOT_FINITE; break; }
        int active = 0;
        for (int b = 0; b < B; b++) {
            if (done[b]) continue;
            if (step > 0 && best[b] == eos_id) { done[b] = 1; continue; }
            out[(size_t)b * max_new + step] = best[b];
            n_out[b] = step + 1;
            if (pos[(size_t)b * T + t] + 1 >= P) done[b] = 1; /* no position left */
            else active = 1;
        }
        if (!active || step + 1 == max_new) break;
        /* next column: the chosen tokens; finished rows get a masked pad */
        int n = t + 1;
        for (int b = 0; b < B; b++) {
            size_t i = (size_t)b * T + n;
            ids[i] = done[b] ? eos_id : best[b];
            mask[i] = !done[b];
            pos[i] = done[b] ? 0 : pos[(size_t)b * T + t] + 1;
        }
        forward_range(c, bt, n, n + 1);
        t = n;
    }
cleanup:
    core_free(logits);
    core_free(best);
    core_free(done);
    return st;
}
