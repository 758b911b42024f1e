#include "row_plan.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"

static CoreStatus find_thoughts(const Batch *bt, const ThoughtSpec *spec, uint8_t *is_thought,
                                char *err, size_t errlen) {
    int B = bt->B, T = bt->T;
    memset(is_thought, 0, (size_t)B * T);
    if (spec->mode != MODE_CONTINUOUS) return CORE_OK;
    for (int b = 0; b < B; b++) {
        const int64_t *ids = bt->ids + (size_t)b * T;
        for (int t = 0; t < T; t++) {
            if (ids[t] != spec->latent_id) continue;
            if (t == 0) {
                snprintf(err, errlen, "example %d: a thought slot (<latent>) at position 0 has no "
                         "earlier hidden state to take", b);
                return CORE_BAD_INPUT;
            }
            if (ids[t - 1] != spec->bot_id && ids[t - 1] != spec->latent_id) {
                snprintf(err, errlen, "example %d, position %d: a thought slot (<latent>) outside a "
                         "<bot> ... <eot> span (it follows token %lld, not <bot> or <latent>)",
                         b, t, (long long)ids[t - 1]);
                return CORE_BAD_INPUT;
            }
            int e = t;
            while (e < T && ids[e] == spec->latent_id) e++;
            if (e == T || ids[e] != spec->eot_id) {
                snprintf(err, errlen, "example %d, position %d: the thought run starting here is not "
                         "closed by <eot>", b, t);
                return CORE_BAD_INPUT;
            }
            if (!bt->mask[(size_t)b * T + t]) {
                snprintf(err, errlen, "example %d, position %d: a thought slot is masked out by the "
                         "attention mask", b, t);
                return CORE_BAD_INPUT;
            }
            is_thought[(size_t)b * T + t] = 1;
        }
    }
    return CORE_OK;
}

CoreStatus plan_thoughts(RowPlan *p, Batch *bt, const ThoughtSpec *spec, char *err, size_t errlen) {
    int B = bt->B, T = bt->T;
    p->is_thought = core_malloc((size_t)B * T);
    p->bounds = core_malloc(sizeof(int) * (size_t)(T + 1));
    if (!p->is_thought || !p->bounds) return CORE_OUT_OF_MEMORY;
    CoreStatus st = find_thoughts(bt, spec, p->is_thought, err, errlen);
    if (st == CORE_OK) bt->is_thought = p->is_thought;
    return st;
}

void plan_passes(RowPlan *p, const Batch *bt, const int *extra, int n_extra) {
    int B = bt->B, T = bt->T, n = 0;
    int *bounds = p->bounds;
    bounds[0] = 0;
    for (int t = 1; t < T; t++) {
        int any = 0;
        for (int i = 0; i < n_extra && !any; i++) any = extra[i] == t;
        for (int b = 0; b < B && !any && bt->is_thought; b++) any = bt->is_thought[(size_t)b * T + t];
        if (any) bounds[++n] = t;
    }
    bounds[++n] = T;
    p->n_pass = n;
}

/* A cell's output is read if the label after it is supervised (its logits) or the input
 * after it is a thought (its hidden state): those cells are out_rows. A cell keeps a row
 * (rows) if its output is read, or if it is a real token at or before a read output of
 * its example (that query reads its keys and values); the tokens after an example's last
 * read output feed nothing. With no layers ln_f reads the embeddings' rows: out_rows are
 * then rows. */
CoreStatus plan_rows(RowPlan *p, Batch *bt, int n_layer) {
    int B = bt->B, T = bt->T;
    size_t n = (size_t)B * T, one_map = 2 * n + T + 1;
    int32_t *buf = core_malloc(sizeof(int32_t) * 2 * one_map);
    if (!buf) return CORE_OUT_OF_MEMORY;
    int32_t *keep = buf, *read = buf + one_map;  /* flags in the maps' row arrays, see rows_pack */
    const int64_t *mask = bt->mask, *labels = bt->labels;
    for (int b = 0; b < B; b++) {
        int later = 0;
        for (int t = T - 1; t >= 0; t--) {
            size_t i = (size_t)b * T + t;
            read[i] = t + 1 < T && ((labels && labels[i + 1] != -100) || p->is_thought[i + 1]);
            later |= read[i];
            keep[i] = read[i] || (mask[i] && later);
        }
    }
    rows_pack(&bt->rows, B, T, keep, keep + n, keep + n + T + 1);
    if (n_layer > 0) rows_pack(&bt->out_rows, B, T, read, read + n, read + n + T + 1);
    else bt->out_rows = bt->rows;
    p->packed = buf;
    return CORE_OK;
}

void plan_attention_counts(const RowPlan *p, const Batch *bt, int64_t *keys, int64_t *queries,
                           int64_t *out_queries) {
    int B = bt->B, T = bt->T;
    for (int b = 0; b < B; b++) {
        int64_t nk = 0;
        for (int i = 0; i < p->n_pass; i++) {
            int64_t nq = 0, no = 0;
            for (int t = p->bounds[i]; t < p->bounds[i + 1]; t++) {
                if (!bt->mask[(size_t)b * T + t] || rows_of(&bt->rows, b, t) < 0) continue;
                nk++;
                nq++;
                no += rows_of(&bt->out_rows, b, t) >= 0;
            }
            size_t k = (size_t)i * B + b;
            keys[k] = nk;
            queries[k] = nq;
            out_queries[k] = no;
        }
    }
}

void plan_free(RowPlan *p) {
    core_free(p->is_thought);
    core_free(p->bounds);
    core_free(p->packed);
    memset(p, 0, sizeof(*p));
}
