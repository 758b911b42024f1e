#include "row_plan.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

static int feeds_back(int mode) {
    return mode == MODE_CONTINUOUS || mode == MODE_SOFT || mode == MODE_JACOBI;
}

CoreStatus check_thought_spec(const ThoughtSpec *spec, int vocab_size, char *err, size_t errlen) {
    static const char *names[] = {"none", "pause", "continuous", "soft", "jacobi"};
    int m = spec->mode;
    if (m < MODE_NONE || m > MODE_JACOBI) {
        snprintf(err, errlen, "mode: unknown thought mode %d", m);
        return CORE_BAD_INPUT;
    }
    if (m == MODE_SOFT && !(spec->temperature > 0.0f && isfinite(spec->temperature))) {
        snprintf(err, errlen, "temperature must be a finite number > 0 for soft thoughts, got %g",
                 (double)spec->temperature);
        return CORE_BAD_INPUT;
    }
    if (m == MODE_JACOBI && spec->iterations < 1) {
        snprintf(err, errlen, "iterations must be >= 1 for jacobi thoughts, got %d", spec->iterations);
        return CORE_BAD_INPUT;
    }
    if (m == MODE_SOFT || m == MODE_JACOBI) {
        const char *field[] = {"latent_id", "bot_id", "eot_id"};
        int64_t id[] = {spec->latent_id, spec->bot_id, spec->eot_id};
        for (int i = 0; i < 3; i++)
            if (id[i] < 0 || id[i] >= vocab_size) {
                snprintf(err, errlen, "%s = %lld: %s thoughts need a token of the vocabulary [0, %d)", field[i],
                         (long long)id[i], names[m], vocab_size);
                return CORE_BAD_INPUT;
            }
    }
    return CORE_OK;
}

static CoreStatus find_thoughts(const Batch *bt, const ThoughtSpec *spec, uint8_t *is_thought,
                                char *err, size_t errlen) {
    int B = bt->B, T = bt->T;
    memset(is_thought, 0, (size_t)B * T);
    if (!feeds_back(spec->mode)) return CORE_OK;
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

/* The unrolled column of (caller's) column t whose cell holds t's final output. */
int plan_column(const RowPlan *p, int t) {
    const JacobiLayout *j = &p->jac;
    if (j->width == 0 || t < j->first) return t;
    return t + (j->copies - 1) * j->width;
}

/* The caller's column of unrolled column v, and (copy) its copy, -1 outside the block. */
static int real_column(const JacobiLayout *j, int v, int *copy) {
    *copy = -1;
    if (j->width == 0 || v < j->first) return v;
    int k = (v - j->first) / j->width;
    if (k >= j->copies) return v - (j->copies - 1) * j->width;
    *copy = k;
    return j->first + (v - j->first) % j->width;
}

/* Lays the batch out unrolled (JacobiLayout); bt and p->is_thought become the unrolled
 * ones. */
static CoreStatus unroll_jacobi(RowPlan *p, Batch *bt, int iterations) {
    int B = bt->B, T = bt->T, F = T, G = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            if (p->is_thought[(size_t)b * T + t]) {
                F = t < F ? t : F;
                G = t + 1 > G ? t + 1 : G;
            }
    if (G == 0) return CORE_OK;  /* no slot: one ordinary pass */
    JacobiLayout *j = &p->jac;
    *j = (JacobiLayout){F, G - F, iterations + 1, T + iterations * (G - F)};
    int Tv = j->T;
    size_t n = (size_t)B * Tv;
    p->cols = core_malloc(sizeof(int64_t) * n * 5);
    p->src_col = core_malloc(sizeof(int32_t) * n);
    uint8_t *thought = core_malloc(n);
    if (!p->cols || !p->src_col || !thought) {
        core_free(thought);
        return CORE_OUT_OF_MEMORY;
    }
    int64_t *ids = p->cols, *mask = ids + n, *pos = mask + n, *labels = pos + n, *given = labels + n;
    for (int b = 0; b < B; b++)
        for (int v = 0; v < Tv; v++) {
            int k, r = real_column(j, v, &k);
            size_t i = (size_t)b * Tv + v, s = (size_t)b * T + r;
            ids[i] = bt->ids[s];
            mask[i] = given[i] = bt->mask[s];
            pos[i] = bt->pos ? bt->pos[s] : 0;
            /* a label is read from the cell before it: keep it where that cell holds the
             * final output of the position before (copy 0's first column reads the
             * question's last cell; of the other copies' labels only the last copy's) */
            labels[i] = bt->labels && (v == 0 || plan_column(p, r - 1) == v - 1) ? bt->labels[s] : -100;
            thought[i] = k >= 1 && p->is_thought[s];
            /* slot j of copy k reads copy k-1 at j-1, or the column before the block */
            p->src_col[i] = !thought[i] ? -1 : r - 1 < F ? r - 1 : v - j->width - 1;
        }
    core_free(p->is_thought);
    p->is_thought = thought;
    bt->T = Tv;
    bt->ids = ids;
    bt->mask = mask;
    if (bt->pos) bt->pos = pos;
    if (bt->labels) bt->labels = labels;
    bt->src_col = p->src_col;
    bt->rows = bt->out_rows = rows_full(B, Tv);
    return CORE_OK;
}

/* Numbers the soft (or projected) thoughts time-major. */
static CoreStatus number_soft(RowPlan *p, Batch *bt, float tau, int projected) {
    int B = bt->B, T = bt->T;
    SoftThoughts *s = &p->soft;
    s->tau = tau;
    s->projected = projected;
    int n = 0;
    for (size_t i = 0; i < (size_t)B * T; i++) n += p->is_thought[i];
    s->index = core_malloc(sizeof(int32_t) * (size_t)B * T);
    s->cell = core_malloc(sizeof(int32_t) * 2 * (size_t)(n ? n : 1));
    if (!s->index || !s->cell) return CORE_OUT_OF_MEMORY;
    s->n = 0;
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            size_t i = (size_t)b * T + t;
            s->index[i] = p->is_thought[i] ? s->n : -1;
            if (!p->is_thought[i]) continue;
            s->cell[2 * s->n] = b;
            s->cell[2 * s->n++ + 1] = t;
        }
    bt->thought_index = s->index;
    return CORE_OK;
}

CoreStatus plan_thoughts(RowPlan *p, Batch *bt, const ThoughtSpec *spec, char *err, size_t errlen) {
    p->real_T = bt->T;
    p->is_thought = core_malloc((size_t)bt->B * bt->T);
    if (!p->is_thought) return CORE_OUT_OF_MEMORY;
    CoreStatus st = find_thoughts(bt, spec, p->is_thought, err, errlen);
    if (st == CORE_OK && spec->mode == MODE_JACOBI) st = unroll_jacobi(p, bt, spec->iterations);
    if (st == CORE_OK && spec->mode == MODE_SOFT) st = number_soft(p, bt, spec->temperature, 0);
    if (st == CORE_OK && spec->mode == MODE_CONTINUOUS && spec->projected) st = number_soft(p, bt, 1.0f, 1);
    if (st != CORE_OK) return st;
    bt->is_thought = p->is_thought;
    p->bounds = core_malloc(sizeof(int) * (size_t)(bt->T + 1));
    return p->bounds ? CORE_OK : CORE_OUT_OF_MEMORY;
}

CoreStatus plan_soft_tensors(RowPlan *p, Batch *bt, int V, int C, int H, int backward) {
    SoftThoughts *s = &p->soft;
    if (!s->index) return CORE_OK;
    size_t n = (size_t)(s->n ? s->n : 1);
    if (s->projected) {
        s->H = H;
        s->h = core_malloc(sizeof(float) * n * C);
        s->pre = core_malloc(sizeof(float) * (n * 2 * H + n * C + 2 * n));   /* pre, act, y, stats */
        s->mix = core_malloc(sizeof(float) * n * C);
        if (backward) {
            s->dmix = core_malloc(sizeof(float) * n * C);
            s->dact = core_malloc(sizeof(float) * (n * H + n * C));            /* dact, dy */
        }
        if (!s->h || !s->pre || !s->mix || (backward && (!s->dmix || !s->dact))) return CORE_OUT_OF_MEMORY;
        s->act = s->pre + n * H;
        s->y = s->act + n * H;
        s->stats = s->y + n * C;
        if (backward) s->dy = s->dact + n * H;
        bt->thought_in = s->mix;
        bt->d_thought_in = s->dmix;
        return CORE_OK;
    }
    s->h = core_malloc(sizeof(float) * n * C);
    s->probs = core_malloc(sizeof(float) * n * V);
    s->mix = core_malloc(sizeof(float) * n * C);
    if (backward) {
        s->dmix = core_malloc(sizeof(float) * n * C);
        s->dz = core_malloc(sizeof(float) * n * V);
    }
    if (!s->h || !s->probs || !s->mix || (backward && (!s->dmix || !s->dz))) return CORE_OUT_OF_MEMORY;
    bt->thought_in = s->mix;
    bt->d_thought_in = s->dmix;
    return CORE_OK;
}

/* The copy whose pass starts at t0 (the columns after the block: the last copy); -1
 * where no copy is dead (no block, or before it). */
static int live_copy(const JacobiLayout *j, int t0) {
    if (j->width == 0 || t0 < j->first) return -1;
    int k = (t0 - j->first) / j->width;
    return k < j->copies ? k : j->copies - 1;
}

void plan_set_live(const RowPlan *p, int64_t *mask, int B, int ld, int t0) {
    const JacobiLayout *j = &p->jac;
    int live = live_copy(j, t0);
    if (live < 0) return;
    const int64_t *given = p->cols + (size_t)4 * B * j->T;
    for (int b = 0; b < B; b++)
        for (int v = j->first; v < j->first + j->copies * j->width; v++) {
            int k = (v - j->first) / j->width;
            mask[(size_t)b * ld + v] = k < live ? 0 : given[(size_t)b * j->T + v];
        }
}

void plan_passes(RowPlan *p, const Batch *bt, const int *extra, int n_extra) {
    int B = bt->B, T = bt->T, n = 0;
    const JacobiLayout *j = &p->jac;
    int *bounds = p->bounds;
    bounds[0] = 0;
    for (int t = 1; t < T; t++) {
        int any = 0;
        for (int i = 0; i < n_extra && !any; i++) any = extra[i] == t;
        if (j->width)  /* Jacobi: one pass per copy, all its slots at once */
            any |= t >= j->first && t <= j->first + j->copies * j->width && (t - j->first) % j->width == 0;
        else
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
    for (size_t i = 0; i < n; i++) read[i] = (int)(i % T) + 1 < T && labels && labels[i + 1] != -100;
    for (size_t i = 0; i < n; i++)
        if (p->is_thought[i]) read[thought_source(bt, i)] = 1;
    for (int k = 0; k < bt->n_hid; k++) read[bt->hid_cell[k]] = 1;
    for (int b = 0; b < B; b++) {
        int later = 0;
        for (int t = T - 1; t >= 0; t--) {
            size_t i = (size_t)b * T + t;
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
    const JacobiLayout *j = &p->jac;
    for (int b = 0; b < B; b++) {
        int64_t nk = 0;
        for (int i = 0; i < p->n_pass; i++) {
            int64_t nq = 0, no = 0;
            /* the keys of a Jacobi copy's pass leave out the copies before it */
            int live = live_copy(j, p->bounds[i]);
            if (live > 0 && p->bounds[i] == j->first + live * j->width)
                for (int t = j->first; t < j->first + j->width; t++)
                    nk -= bt->mask[(size_t)b * T + t + (live - 1) * j->width] &&
                          rows_of(&bt->rows, b, t + (live - 1) * j->width) >= 0;
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
    core_free(p->cols);
    core_free(p->src_col);
    SoftThoughts *s = &p->soft;
    core_free(s->index);
    core_free(s->cell);
    core_free(s->h);
    core_free(s->probs);
    core_free(s->mix);
    core_free(s->dmix);
    core_free(s->dz);
    core_free(s->pre);
    core_free(s->dact);
    memset(p, 0, sizeof(*p));
}
