/* Coconut's continuous thoughts: the loss/forward drivers that run every pass of a
 * batch's plan (row_plan.h) forward and then every pass backward. */
#ifndef COCONUT_THOUGHTS_H
#define COCONUT_THOUGHTS_H

#include "gpt2.h"

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
