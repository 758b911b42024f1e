/* Coconut's continuous thoughts: finding thought slots, the pass schedule, and the
 * loss/forward drivers that run every pass forward and then every pass backward. */
#ifndef COCONUT_THOUGHTS_H
#define COCONUT_THOUGHTS_H

#include "gpt2.h"

enum { MODE_NONE = 0, MODE_PAUSE = 1, MODE_CONTINUOUS = 2 };

typedef struct {
    int64_t latent_id, bot_id, eot_id;
    int mode;
} ThoughtSpec;

/* Marks is_thought (B,T) and checks every <latent> run sits right after <bot> and right
 * before <eot>. CORE_BAD_INPUT comes with a message naming the example and position. */
CoreStatus find_thoughts(const Batch *bt, const ThoughtSpec *spec, uint8_t *is_thought,
                  char *err, size_t errlen);

/* Pass boundaries: 0, every thought position, the `extra` ones (tests split ranges at
 * will), T. bounds needs T+1 entries; returns the number of passes. A thought at p then always reads ln_f output of an earlier pass. */
int pass_bounds(const Batch *bt, const int *extra, int n_extra, int *bounds);

/* Runs the passes forward, the loss at supervised positions, and (if backward) every
 * pass backward in reverse, accumulating into c->g. CORE_NO_SUPERVISED (checked before
 * any pass), CORE_OUT_OF_MEMORY or CORE_NOT_FINITE (the gradients of wte may then hold
 * a partial sum) otherwise. */
CoreStatus run_loss(Ctx *c, const Batch *bt, const int *bounds, int n_pass, int backward,
                    float grad_scale, double *loss, long *n_supervised);

/* Logits (B,T,V) of every position after all passes (NULL: only the passes); bt has
 * the full row map (logits are wanted at every cell). It cannot
 * fail: it works in the arena acts_reserve laid out, and the logits are handed back as
 * they are, finite or not. */
void run_forward(Ctx *c, const Batch *bt, const int *bounds, int n_pass, float *logits);

#endif
