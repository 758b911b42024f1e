#include "thoughts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

int find_thoughts(const Batch *bt, const ThoughtSpec *spec, uint8_t *is_thought,
                  char *err, size_t errlen) {
    int B = bt->B, T = bt->T;
    memset(is_thought, 0, (size_t)B * T);
    if (spec->mode != MODE_CONTINUOUS) return 0;
    for (int b = 0; b < B; b++) {
        const int64_t *ids = bt->ids + (size_t)b * T;
        for (int t = 0; t < T; t++) {
            if (ids[t] != spec->latent_id) continue;
            if (t == 0) {
                snprintf(err, errlen, "example %d: a thought slot (<latent>) at position 0 has no "
                         "earlier hidden state to take", b);
                return -1;
            }
            if (ids[t - 1] != spec->bot_id && ids[t - 1] != spec->latent_id) {
                snprintf(err, errlen, "example %d, position %d: a thought slot (<latent>) outside a "
                         "<bot> ... <eot> span (it follows token %lld, not <bot> or <latent>)",
                         b, t, (long long)ids[t - 1]);
                return -1;
            }
            int e = t;
            while (e < T && ids[e] == spec->latent_id) e++;
            if (e == T || ids[e] != spec->eot_id) {
                snprintf(err, errlen, "example %d, position %d: the thought run starting here is not "
                         "closed by <eot>", b, t);
                return -1;
            }
            if (!bt->mask[(size_t)b * T + t]) {
                snprintf(err, errlen, "example %d, position %d: a thought slot is masked out by the "
                         "attention mask", b, t);
                return -1;
            }
            is_thought[(size_t)b * T + t] = 1;
        }
    }
    return 0;
}

int pass_bounds(const Batch *bt, const int *extra, int n_extra, int *bounds) {
    int B = bt->B, T = bt->T, n = 0;
    bounds[0] = 0;
    for (int t = 1; t < T; t++) {
        int any = 0;
        for (int i = 0; i < n_extra && !any; i++) any = extra[i] == t;
        for (int b = 0; b < B && !any && bt->is_thought; b++) any = bt->is_thought[(size_t)b * T + t];
        if (any) bounds[++n] = t;
    }
    bounds[++n] = T;
    return n;
}

int run_loss(Ctx *c, const Batch *bt, const int *bounds, int n_pass, int backward,
             float grad_scale, double *loss, long *n_supervised, char *err, size_t errlen) {
    int B = bt->B, T = bt->T, C = c->shape->n_embd, V = c->shape->vocab_size;
    Acts *a = c->a;
    for (int i = 0; i < n_pass; i++) forward_range(c, bt, bounds[i], bounds[i + 1]);

    /* the loss reads logits only where the next label is supervised */
    long N = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t + 1 < T; t++) N += bt->labels[(size_t)b * T + t + 1] != -100;
    *n_supervised = N;
    if (N == 0) {
        snprintf(err, errlen, "no supervised position: every label after the first is -100");
        return -1;
    }
    float *h = malloc(sizeof(float) * (size_t)N * C * (backward ? 2 : 1));
    int64_t *tg = malloc(sizeof(int64_t) * (size_t)N);
    size_t *rows = malloc(sizeof(size_t) * (size_t)N);
    if (!h || !tg || !rows) {
        free(h); free(tg); free(rows);
        snprintf(err, errlen, "out of memory for %ld supervised rows", N);
        return -1;
    }
    long k = 0;
    for (int t = 0; t + 1 < T; t++)
        for (int b = 0; b < B; b++) {
            int64_t y = bt->labels[(size_t)b * T + t + 1];
            if (y == -100) continue;
            rows[k] = (size_t)t * B + b;
            tg[k] = y;
            memcpy(h + (size_t)k * C, a->lnf + rows[k] * C, sizeof(float) * C);
            k++;
        }
    float *dh = backward ? h + (size_t)N * C : NULL;
    if (dh) fill_zero(dh, (size_t)N * C);
    double total = lm_head_xent(dh, backward ? c->g.wte : NULL, h, c->p.wte, tg, (int)N, C, V,
                                grad_scale / (float)N);
    int rc = 0;
    if (!isfinite(total)) {
        snprintf(err, errlen, "the loss is not finite (a logit or activation overflowed)");
        rc = -1;
    } else {
        *loss = total / (double)N;
        if (backward) {
            fill_zero(a->dlnf, (size_t)T * B * C);
            for (long i = 0; i < N; i++) {
                float *dst = a->dlnf + rows[i] * C;
                const float *src = dh + (size_t)i * C;
                for (int j = 0; j < C; j++) dst[j] += src[j];
            }
            for (int l = 0; l < c->shape->n_layer; l++)
                fill_zero(a->layers[l].dqkv, (size_t)T * B * 3 * C);
            /* reverse pass order: a pass's backward completes the ln_f gradient of the
             * positions whose hidden states it read as thoughts */
            for (int i = n_pass - 1; i >= 0; i--) backward_range(c, bt, bounds[i], bounds[i + 1]);
            backward_weights(c, bt);
        }
    }
    free(h); free(tg); free(rows);
    return rc;
}

void run_forward(Ctx *c, const Batch *bt, const int *bounds, int n_pass, float *logits) {
    int B = bt->B, T = bt->T, C = c->shape->n_embd, V = c->shape->vocab_size;
    for (int i = 0; i < n_pass; i++) forward_range(c, bt, bounds[i], bounds[i + 1]);
    if (!logits) return;
    /* rows of one position are contiguous time-major; write them batch-major */
    for (int t = 0; t < T; t++)
        matmul(0, 1, B, V, C, 1.0f, c->a->lnf + (size_t)t * B * C, C, c->p.wte, C, 0.0f,
               logits + (size_t)t * V, T * V);
}
