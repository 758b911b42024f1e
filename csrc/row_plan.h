/* The plan of one batch, made before any compute: which cells are thought slots, the
 * passes they cut the positions into, and, for the loss, which cells own an activation
 * row (rows.h) and which of those have their output read. */
#ifndef COCONUT_ROW_PLAN_H
#define COCONUT_ROW_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "gpt2.h"

enum { MODE_NONE = 0, MODE_PAUSE = 1, MODE_CONTINUOUS = 2 };

typedef struct {
    int64_t latent_id, bot_id, eot_id;
    int mode;
} ThoughtSpec;

/* The arrays a plan owns; the batch it planned points into them. */
typedef struct {
    uint8_t *is_thought;  /* (B,T) 1 where the input is a fed-back hidden state */
    int *bounds;          /* (T+1) room; n_pass + 1 pass boundaries */
    int n_pass;
    int32_t *packed;      /* the packed row maps' arrays; NULL while bt has the full maps */
} RowPlan;

/* Marks the thought slots of bt (bt->is_thought points at the plan's map) and checks
 * every <latent> run sits right after <bot> and right before <eot>. CORE_BAD_INPUT comes
 * with a message naming the example and position; CORE_OUT_OF_MEMORY. The caller calls
 * plan_free in any case. */
CoreStatus plan_thoughts(RowPlan *p, Batch *bt, const ThoughtSpec *spec, char *err, size_t errlen);

/* Pass boundaries: 0, every thought position, the `extra` ones (tests split ranges at
 * will), T. A thought at p then always reads the ln_f output of an earlier pass. */
void plan_passes(RowPlan *p, const Batch *bt, const int *extra, int n_extra);

/* Gives the loss's batch its packed row maps (bt->rows, bt->out_rows); needs labels.
 * CORE_OUT_OF_MEMORY. */
CoreStatus plan_rows(RowPlan *p, Batch *bt, int n_layer);

/* Attention's work per pass i and example b ((n_pass, B) each): its keys (the unmasked
 * cells of [0, bounds[i+1]) with a row), its queries in the layers before the last (the
 * keys at or after bounds[i]) and in the last layer (those of them in out_rows). */
void plan_attention_counts(const RowPlan *p, const Batch *bt, int64_t *keys, int64_t *queries,
                           int64_t *out_queries);

void plan_free(RowPlan *p);

#endif
